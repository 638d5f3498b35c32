//! `iommu-tb`: command-line front end of the testbench (see `iommu-tb --help`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

//! `iommu-tb`: command-line front end of the testbench (see `iommu-tb --help`).

mod cli;

/// Exit status when standard output was closed by its reader (`iommu-tb regress | head`):
/// what a shell reports for a program ended by SIGPIPE (128 + 13).
const EXIT_STDOUT_CLOSED: i32 = 141;

fn main() -> std::process::ExitCode {
    // `println!` panics when the reader of standard output has gone away (Rust ignores
    // SIGPIPE). End quietly instead, as a Unix tool does when its output pipe closes.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(EXIT_STDOUT_CLOSED);
        }
        default_hook(info);
    }));
    cli::main()
}

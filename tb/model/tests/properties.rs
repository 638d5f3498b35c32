//! Property tests over random operation sequences (explicit seeds, ChaCha8): the golden
//! walker without cache and the oracle agree on every request; the maximal cache agrees
//! too, stale windows included; the bug switch is found; no input makes anything panic.

use iommu_model::driver::DriverQuirks;
use iommu_model::golden::{translate, HwState, MaxCache, Outcome, Request};
use iommu_model::mem::Mem;
use iommu_model::qi::Descriptor;
use iommu_model::sim::{golden_kernel, GoldenExt, GoldenKernel};
use iommu_model::stimulus::Stimulus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Harness {
    k: GoldenKernel,
    stim: Stimulus,
    stats: Stats,
}

/// What the checks exercised, so the property cannot pass vacuously.
#[derive(Default, Debug, Clone, Copy)]
struct Stats {
    requests: u64,
    translated: u64,
    via_pasid: u64,
    faults: u64,
    stale_hits: u64,
}

impl Harness {
    fn new(seed: u64, quirks: DriverQuirks) -> Self {
        let mut k = golden_kernel(quirks).unwrap();
        Stimulus::add_devices(&mut k).unwrap();
        Self {
            k,
            stim: Stimulus::new(seed),
            stats: Stats::default(),
        }
    }

    fn step(&mut self) {
        self.stim.step(&mut self.k);
    }

    fn request(&mut self) -> Request {
        self.stim.request(&self.k)
    }

    /// Checks `n` requests; returns the first disagreement.
    fn check(&mut self, n: usize) -> Result<(), String> {
        for _ in 0..n {
            let req = self.request();
            let allowed = self.k.allowed(&req);
            let plain = self.k.translate(&req).outcome;
            let cached = self.k.translate_cached(&req).outcome;
            allowed
                .check(&plain)
                .map_err(|m| format!("{req}: walker: {m}"))?;
            self.stats.requests += 1;
            match plain {
                Outcome::Translated(_) => {
                    self.stats.translated += 1;
                    self.stats.via_pasid += u64::from(req.pasid.is_some_and(|p| p != 0));
                }
                Outcome::Fault(_) => self.stats.faults += 1,
                _ => {}
            }
            self.stats.stale_hits += u64::from(cached != plain);
            allowed
                .check(&cached)
                .map_err(|m| format!("{req}: maximal cache: {m}"))?;
        }
        Ok(())
    }
}

fn run(seed: u64, quirks: DriverQuirks, ops: usize, reqs: usize) -> Result<Stats, String> {
    let mut h = Harness::new(seed, quirks);
    for step in 0..ops {
        h.step();
        if let Err(e) = h.check(reqs) {
            return Err(format!(
                "seed {seed} step {step}: {e}\n  ops:\n    {}",
                h.stim.log.join("\n    ")
            ));
        }
    }
    Ok(h.stats)
}

#[test]
fn walker_cache_and_oracle_agree_on_random_sequences() {
    let mut total = Stats::default();
    for seed in 0..2000u64 {
        match run(seed, DriverQuirks::default(), 40, 6) {
            Ok(s) => {
                total.requests += s.requests;
                total.translated += s.translated;
                total.via_pasid += s.via_pasid;
                total.faults += s.faults;
                total.stale_hits += s.stale_hits;
            }
            Err(e) => panic!("{e}"),
        }
    }
    eprintln!("{total:?}");
    assert!(total.translated > total.requests / 10, "{total:?}");
    assert!(total.via_pasid > 1000, "{total:?}");
    assert!(total.faults > total.requests / 10, "{total:?}");
    assert!(
        total.stale_hits > 20,
        "stale windows must be exercised: {total:?}"
    );
}

#[test]
fn random_sequences_find_the_skipped_pasid_flush() {
    let found = (0..2000u64).find_map(|seed| {
        run(
            seed,
            DriverQuirks {
                skip_pasid_flush: true,
                ..DriverQuirks::default()
            },
            60,
            6,
        )
        .err()
    });
    let e = found.expect("the bug switch must be caught by some sequence");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("maximal cache"), "{e}");
}

#[test]
fn random_sequences_find_ih_always_set() {
    let found = (0..2000u64).find_map(|seed| {
        run(
            seed,
            DriverQuirks {
                ih_always_set: true,
                ..DriverQuirks::default()
            },
            60,
            6,
        )
        .err()
    });
    let e = found.expect("a stale non-leaf entry into a freed, reused page must be found");
    eprintln!("{}", e.lines().next().unwrap_or_default());
    assert!(e.contains("maximal cache"), "{e}");
}

#[test]
fn walker_never_panics_on_random_memory() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..300 {
        let mut mem = Mem::with_layout(1 << 36, 0x100_0000, 0x200_0000);
        let root = 0x10_0000u64;
        // Random structure words in a few pages the walk is likely to follow.
        let pages: Vec<u64> = (0..8).map(|i| root + i * 0x1000).collect();
        for _ in 0..200 {
            let pg = pages[rng.gen_range(0..pages.len())];
            let word = rng.gen_range(0..512u64) * 8;
            let v = if rng.gen_bool(0.7) {
                pages[rng.gen_range(0..pages.len())] | rng.gen_range(0..0x1000u64)
            } else {
                rng.gen()
            };
            mem.write64(pg + word, v).unwrap();
        }
        if rng.gen_bool(0.2) {
            mem.add_error_range(root + 0x3000, root + 0x4000);
        }
        let hw = HwState {
            te: rng.gen_bool(0.95),
            rtaddr: root
                | if rng.gen_bool(0.9) {
                    1 << 10
                } else {
                    rng.gen_range(0..4u64) << 10
                },
        };
        let mut cache = MaxCache::new();
        for _ in 0..50 {
            let pasid = if rng.gen_bool(0.5) {
                Some(rng.gen_range(0..(1u32 << 21)))
            } else {
                None
            };
            let req = Request {
                rid: rng.gen(),
                pasid,
                pmr: pasid.is_some() && rng.gen_bool(0.1),
                er: pasid.is_some() && rng.gen_bool(0.1),
                addr: rng.gen(),
                len: rng.gen_range(0..5000),
                write: rng.gen(),
                at: Default::default(),
            };
            let a = translate(&hw, &mem, &req);
            assert_eq!(a, translate(&hw, &mem, &req), "deterministic");
            let c = cache.translate(&hw, &mem, &req);
            // Memory does not change here, so a cache hit can only differ from memory if two
            // PASID entries gave one DID different tables (software never does; these
            // seeded images do not).
            assert_eq!(
                a.outcome, c.outcome,
                "a cache filled from this memory agrees with it"
            );
        }
    }
}

#[test]
fn descriptor_decode_never_panics_and_round_trips() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut decoded = 0;
    for _ in 0..20000 {
        let mut q = [rng.gen::<u64>(), 0, 0, 0];
        // Mostly plausible descriptors: small type, few stray bits.
        q[0] = (q[0] & 0xFFFF_FFFF_FFFF_F0FF & !(0x7 << 9))
            & if rng.gen_bool(0.8) {
                0x000F_FFFF_FFFF_00FF
            } else {
                !0
            };
        q[0] = (q[0] & !0xF) | rng.gen_range(0..9u64);
        q[1] = if rng.gen_bool(0.5) {
            0
        } else {
            rng.gen::<u64>() & !0x80
        };
        if rng.gen_bool(0.05) {
            q[2] = rng.gen();
        }
        if let Ok(d) = Descriptor::decode(q) {
            decoded += 1;
            assert_eq!(d.encode(), q, "{d}");
        }
    }
    assert!(
        decoded > 200,
        "the generator reaches valid descriptors ({decoded})"
    );
}

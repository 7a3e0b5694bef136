//! Results of the runs, and the tables and machine-readable lines printed
//! from them. Every series holds one value per repetition, in repetition
//! order, so two implementations' values at the same index come from the
//! same repetition: ratios are taken pairwise (paired ratios).

use std::collections::BTreeMap;

use crate::cases::{Workload, CASES, WORKLOADS};

/// Median, min and max of some values.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stats {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// Values by (key, implementation), one per repetition, in the order
/// the pairs were first seen.
#[derive(Default)]
pub struct Results {
    order: Vec<(&'static str, &'static str)>,
    series: BTreeMap<(&'static str, &'static str), Vec<f64>>,
}

impl Results {
    pub fn add(&mut self, key: &'static str, imp: &'static str, value: f64) {
        if !self.series.contains_key(&(key, imp)) {
            self.order.push((key, imp));
        }
        self.series.entry((key, imp)).or_default().push(value);
    }

    /// The implementations with values under `key`, in order.
    pub fn imps<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'static str> + 'a {
        self.order
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|&(_, imp)| imp)
    }

    pub fn stats(&self, key: &str, imp: &str) -> Option<Stats> {
        Stats::of(self.series.get(&(key, imp))?)
    }

    /// The ratios `imp / reference` taken repetition by repetition: their
    /// median and spread.
    pub fn paired(&self, key: &str, imp: &str, reference: &str) -> Option<Stats> {
        let a = self.series.get(&(key, imp))?;
        let b = self.series.get(&(key, reference))?;
        let ratios: Vec<f64> = a
            .iter()
            .zip(b)
            .map(|(a, b)| if *b > 0.0 { a / b } else { f64::NAN })
            .collect();
        Stats::of(&ratios)
    }
}

/// Everything the parent collected.
#[derive(Default)]
pub struct Collected {
    /// By metric name.
    pub metrics: Results,
    /// Wall ms of the measured section, by workload.
    pub wall: Results,
    /// CPU ms of the measured section (user + system, all threads), by
    /// workload.
    pub cpu: Results,
    /// Minor page faults of the measured section per unit of work, by
    /// workload.
    pub faults: Results,
}

pub fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "-".to_string()
    } else if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// "1.02x (0.95-1.10)", or "-" without a reference.
fn fmt_paired(paired: Option<Stats>) -> String {
    match paired {
        Some(p) if p.min == p.max => format!("{:.2}x", p.median),
        Some(p) => format!("{:.2}x ({:.2}-{:.2})", p.median, p.min, p.max),
        None => "-".to_string(),
    }
}

/// The workload's tables: each metric's, then the costs of the measured
/// section, then what each implementation does.
pub fn print_workload(c: &Collected, workload: &Workload, sizes: &crate::common::Sizes) {
    println!();
    println!("{}", (workload.title)(sizes));
    for m in workload.metrics {
        let direction = if m.higher_is_better {
            "higher is better; vs tokio >1 = better"
        } else {
            "lower is better; vs tokio <1 = better"
        };
        println!("  [{}] {} ({direction})", m.name, m.unit);
        println!(
            "  {:<18} {:>10} {:>10} {:>10}   {:<24}",
            "impl", "median", "min", "max", "vs tokio, paired (range)"
        );
        for imp in c.metrics.imps(m.name) {
            // A metric an implementation cannot report (storm's spread
            // over tokio's workers) has no values.
            let Some(s) = c.metrics.stats(m.name, imp) else {
                continue;
            };
            println!(
                "  {:<18} {:>10} {:>10} {:>10}   {:<24}",
                imp,
                fmt_value(s.median),
                fmt_value(s.min),
                fmt_value(s.max),
                fmt_paired(c.metrics.paired(m.name, imp, "tokio")),
            );
        }
    }
    let (_, per) = (workload.per)(sizes);
    println!(
        "  [cost] of the measured section, whole process: medians; \
         CPU = user + system; faults = minor page faults per {per} (lower is better)"
    );
    println!(
        "  {:<18} {:>9} {:>9}   {:<24} {:>12} {:>21}",
        "impl",
        "wall ms",
        "CPU ms",
        "CPU vs tokio, paired",
        format!("faults/{per}"),
        "faults min-max"
    );
    let name = workload.name;
    for imp in c.cpu.imps(name) {
        let wall = c.wall.stats(name, imp).map_or(f64::NAN, |s| s.median);
        let cpu = c.cpu.stats(name, imp).map_or(f64::NAN, |s| s.median);
        let faults = c.faults.stats(name, imp);
        println!(
            "  {:<18} {:>9} {:>9}   {:<24} {:>12} {:>21}",
            imp,
            fmt_value(wall),
            fmt_value(cpu),
            fmt_paired(c.cpu.paired(name, imp, "tokio")),
            faults.map_or("-".to_string(), |f| fmt_value(f.median)),
            faults.map_or("-".to_string(), |f| format!(
                "{}-{}",
                fmt_value(f.min),
                fmt_value(f.max)
            )),
        );
    }
    for case in CASES.iter().filter(|c| c.workload == name) {
        if c.cpu.imps(name).any(|imp| imp == case.imp) {
            println!("    {:<18} {}", case.imp, case.what);
        }
    }
}

/// One line per workload and implementation: the headline metric, its
/// paired ratio to tokio, the section's costs and the memory figure.
pub fn print_summary(c: &Collected, sizes: &crate::common::Sizes, reps: usize) {
    println!();
    println!(
        "summary: medians of {reps} repetition(s), every run in a fresh process; \
         vs tokio = paired ratio per repetition, median (min-max); \
         wall, CPU and faults cover the measured section"
    );
    println!(
        "  {:<10} {:<18} {:>18}   {:<22} {:>9} {:>9}   {:<22} {:>18} {:>12}",
        "workload",
        "impl",
        "result",
        "vs tokio",
        "wall ms",
        "CPU ms",
        "CPU vs tokio",
        "faults",
        "memory"
    );
    for workload in WORKLOADS {
        let headline = &workload.metrics[0];
        let (_, per) = (workload.per)(sizes);
        for imp in c.metrics.imps(headline.name) {
            let value = c
                .metrics
                .stats(headline.name, imp)
                .map_or(f64::NAN, |s| s.median);
            let memory = workload.memory.and_then(|m| {
                let unit = workload.metrics.iter().find(|x| x.name == m)?.unit;
                let s = c.metrics.stats(m, imp)?;
                Some(format!("{} {unit}", fmt_value(s.median)))
            });
            println!(
                "  {:<10} {:<18} {:>18}   {:<22} {:>9} {:>9}   {:<22} {:>18} {:>12}",
                workload.name,
                imp,
                format!("{} {}", fmt_value(value), headline.unit),
                fmt_paired(c.metrics.paired(headline.name, imp, "tokio")),
                c.wall
                    .stats(workload.name, imp)
                    .map_or("-".to_string(), |s| fmt_value(s.median)),
                c.cpu
                    .stats(workload.name, imp)
                    .map_or("-".to_string(), |s| fmt_value(s.median)),
                fmt_paired(c.cpu.paired(workload.name, imp, "tokio")),
                c.faults
                    .stats(workload.name, imp)
                    .map_or("-".to_string(), |s| format!(
                        "{}/{per}",
                        fmt_value(s.median)
                    )),
                memory.unwrap_or_default(),
            );
        }
    }
}

/// The project's targets: (metric, impl, reference, bound, at least?).
const TARGETS: &[(&str, &str, &str, f64, bool)] = &[
    ("bulk", "evstream", "tokio", 0.95, true),
    ("bulk", "evstream-zc", "tokio", 1.0, true),
    ("pingpong2", "evstream", "tokio", 1.0, true),
    ("pingpong1", "evstream", "tokio", 1.0, true),
    ("lines", "evstream*", "std", 1.0, true),
    ("lines", "evstream*", "tokio", 2.0, true),
    ("conns", "evstream", "tokio", 1.0, false),
    ("conns", "evstream-group2", "tokio-mt2", 1.0, false),
    ("conns-rss", "evstream", "async-io", 1.0, false),
    ("tlsbulk", "evstream", "tokio", 1.0, true),
    ("tlsbulk", "evstream-zc", "tokio", 1.0, true),
    ("tlspingpong", "evstream", "tokio", 1.0, true),
];

fn higher_is_better(metric: &str) -> bool {
    WORKLOADS
        .iter()
        .flat_map(|w| w.metrics)
        .find(|m| m.name == metric)
        .is_some_and(|m| m.higher_is_better)
}

pub fn print_targets(c: &Collected) {
    let mut header = Some(
        "targets (median of the paired ratios; evstream* = the evstream variant with the best one):",
    );
    for &(metric, imp, reference, bound, at_least) in TARGETS {
        let higher = higher_is_better(metric);
        let best = c
            .metrics
            .imps(metric)
            .filter(|i| match imp.strip_suffix('*') {
                Some(prefix) => i.starts_with(prefix),
                None => *i == imp,
            })
            .filter_map(|i| Some((i, c.metrics.paired(metric, i, reference)?)))
            .max_by(|(_, a), (_, b)| {
                if higher {
                    a.median.total_cmp(&b.median)
                } else {
                    b.median.total_cmp(&a.median)
                }
            });
        let Some((best, ratio)) = best else {
            continue;
        };
        if let Some(header) = header.take() {
            println!();
            println!("{header}");
        }
        let met = if at_least {
            ratio.median >= bound
        } else {
            ratio.median <= bound
        };
        println!(
            "  {:<10} {:<18} vs {:<9} {} {:.2}x: {:<22} {}",
            metric,
            best,
            reference,
            if at_least { ">=" } else { "<=" },
            bound,
            fmt_paired(Some(ratio)),
            if met { "met" } else { "MISSED" }
        );
    }
}

/// `RESULT`, `CPU` and `FAULTS` lines (documented in `compare.rs`).
pub fn print_machine_block(c: &Collected, sizes: &crate::common::Sizes) {
    println!();
    for workload in WORKLOADS {
        for m in workload.metrics {
            for imp in c.metrics.imps(m.name) {
                let Some(s) = c.metrics.stats(m.name, imp) else {
                    continue;
                };
                let [ratio, lo, hi] = ratio_fields(c.metrics.paired(m.name, imp, "tokio"));
                println!(
                    "RESULT\t{}\t{imp}\t{:.3}\t{:.3}\t{:.3}\t{}\t{ratio}\t{}\t{lo}\t{hi}",
                    m.name,
                    s.median,
                    s.min,
                    s.max,
                    m.unit,
                    if m.higher_is_better {
                        "higher"
                    } else {
                        "lower"
                    }
                );
            }
        }
    }
    for workload in WORKLOADS {
        for imp in c.cpu.imps(workload.name) {
            let s = c
                .cpu
                .stats(workload.name, imp)
                .expect("a series has values");
            let [ratio, lo, hi] = ratio_fields(c.cpu.paired(workload.name, imp, "tokio"));
            println!(
                "CPU\t{}\t{imp}\t{:.3}\t{:.3}\t{:.3}\t{ratio}\t{lo}\t{hi}",
                workload.name, s.median, s.min, s.max
            );
        }
    }
    for workload in WORKLOADS {
        let (_, per) = (workload.per)(sizes);
        for imp in c.faults.imps(workload.name) {
            let s = c
                .faults
                .stats(workload.name, imp)
                .expect("a series has values");
            println!(
                "FAULTS\t{}\t{imp}\t{:.1}\t{:.1}\t{:.1}\t{per}",
                workload.name, s.median, s.min, s.max
            );
        }
    }
}

/// A paired ratio's median, min and max for a machine-readable line
/// (`nan` without a reference).
fn ratio_fields(paired: Option<Stats>) -> [String; 3] {
    match paired {
        Some(p) => [p.median, p.min, p.max].map(|v| format!("{v:.4}")),
        None => ["nan", "nan", "nan"].map(String::from),
    }
}

use tlsbench::bench::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("session");
    let provider = args.get(2).map(String::as_str).unwrap_or("ring");
    let c2s: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(64) << 20;
    let s2c: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(64) << 20;
    let limit: usize = args.get(5).map(|s| s.parse().unwrap()).unwrap_or(64) << 10;
    let p = match provider {
        "ring" => rustls::crypto::ring::default_provider(),
        #[cfg(feature = "aws")]
        "aws" => rustls::crypto::aws_lc_rs::default_provider(),
        other => panic!("provider {other}?"),
    };
    let (c, s) = configs(p);
    let f = measure(|| match which {
        "session" => session_pump(c, s, c2s, s2c, limit),
        "tokio" => tokio_pump(c, s, c2s, s2c),
        other => panic!("{other}?"),
    });
    let total = (c2s + s2c) as f64 / (1 << 20) as f64;
    println!(
        "{which:8} {provider:5} c2s {} MiB s2c {} MiB limit {} KiB: wall {:.3} s, {:.0} MiB/s, cpu user {:.3} s sys {:.3} s ({:.0} MiB per cpu-second)",
        c2s >> 20, s2c >> 20, limit >> 10,
        f.wall.as_secs_f64(), total / f.wall.as_secs_f64(),
        f.user.as_secs_f64(), f.sys.as_secs_f64(), total / (f.user + f.sys).as_secs_f64()
    );
}

//! The Prometheus endpoint end to end: a real backupd with `[metrics] listen`, scraped over
//! plain TCP, its exposition checked by `promtool` and scraped by a real Prometheus server,
//! and attacked with idle connections, an oversized request line and wrong methods.

use backupd_tests::scrape::{
    exchange, free_port, listening_ports, request, samples, scrape, HttpReply,
};
use backupd_tests::{
    bin, json_ok, s, text, wait_until, wait_until_else, DaemonOptions, KillOnDrop, TestDaemon,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FINISHED: &str = r#"backupd_jobs_finished_total{kind="backup",outcome="succeeded"}"#;
const DURATIONS: &str = r#"backupd_job_duration_seconds_count{kind="backup"}"#;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn metrics_config(addr: SocketAddr) -> String {
    format!("[metrics]\nlisten = \"{addr}\"\n")
}

/// A daemon serving its metrics on a free loopback port.
fn metrics_daemon() -> (TestDaemon, SocketAddr) {
    let addr = addr(free_port());
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(metrics_config(addr)),
        ..Default::default()
    });
    (d, addr)
}

/// Scrapes until `f` finds what it wants in the samples; panics with the last exposition.
fn scrape_until<T>(
    addr: SocketAddr,
    what: &str,
    within: Duration,
    mut f: impl FnMut(&BTreeMap<String, f64>) -> Option<T>,
) -> T {
    let last = std::cell::RefCell::new(String::new());
    wait_until_else(
        what,
        within,
        || {
            let text = scrape(addr).ok()?;
            let found = f(&samples(&text));
            *last.borrow_mut() = text;
            found
        },
        || format!("last scrape:\n{}", last.borrow()),
    )
}

fn promtool() -> std::path::PathBuf {
    let found = Command::new("sh")
        .args(["-c", "command -v promtool"])
        .output()
        .expect("sh");
    assert!(
        found.status.success(),
        "promtool not found: install Debian's `prometheus` package \
         (`apt-get install --no-install-recommends prometheus`; .ci/run does)"
    );
    String::from_utf8_lossy(&found.stdout).trim().into()
}

#[test]
fn a_backup_is_counted_and_promtool_finds_the_exposition_clean() {
    let (d, addr) = metrics_daemon();
    assert!(
        listening_ports(d.pid()).contains(&addr.port()),
        "{:?}",
        listening_ports(d.pid())
    );
    d.wait_repo("default");

    let first = scrape(addr).expect("scrape");
    let before = samples(&first);
    // Every kind is there from the start, at zero.
    assert_eq!(before.get(FINISHED), Some(&0.0), "{first}");
    assert_eq!(before.get(DURATIONS), Some(&0.0), "{first}");

    let src = d.dir.path().join("data");
    std::fs::create_dir_all(&src).expect("mkdir");
    // Text that compresses (and is unique), and two copies of data that does not compress:
    // the second copy is what deduplication spares.
    let lines: String = (0..80_000).map(|i| format!("line {i:08}\n")).collect();
    std::fs::write(src.join("text"), &lines).expect("write");
    let random = backupd_tests::pseudo_random_bytes(400_000, 7);
    std::fs::write(src.join("random"), &random).expect("write");
    std::fs::write(src.join("random-copy"), &random).expect("write");
    let total = (lines.len() + 2 * random.len()) as f64;
    let out = d.ctl(&["backup", s(&src)]);
    assert!(out.status.success(), "{}", text(&out));

    let after = scrape_until(
        addr,
        "the backup in the metrics",
        Duration::from_secs(10),
        |s| (s.get(FINISHED) >= Some(&1.0) && s.get(DURATIONS) >= Some(&1.0)).then(|| s.clone()),
    );
    let get = |series: &str| {
        *after
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {after:#?}"))
    };
    assert!(get(r#"backupd_job_duration_seconds_sum{kind="backup"}"#) > 0.0);
    assert!(get(r#"backupd_job_duration_seconds_bucket{kind="backup",le="+Inf"}"#) >= 1.0);
    assert!(get("backupd_read_bytes_total") >= total, "{after:#?}");
    assert!(get("backupd_stored_bytes_total") > 0.0);
    assert!(get(r#"backupd_last_backup_dedup_ratio{repository="default"}"#) > 1.0);
    assert!(get(r#"backupd_last_backup_compression_ratio{repository="default"}"#) > 1.0);
    assert_eq!(get(r#"backupd_queue_jobs{state="running"}"#), 0.0);
    let score = get("backupd_health_score");
    assert!((0.0..=100.0).contains(&score), "{score}");
    let levels: f64 = ["ok", "degraded", "failing"]
        .iter()
        .map(|l| get(&format!("backupd_health_level{{level=\"{l}\"}}")))
        .sum();
    assert_eq!(levels, 1.0, "exactly one health level is in force");
    let open = get(r#"backupd_bottleneck_open{kind="disk"}"#);
    assert!(open == 0.0 || open == 1.0, "{open}");
    assert!(get("process_resident_memory_bytes") > 1_000_000.0);
    assert!(get("process_open_fds") > 3.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let started = get("process_start_time_seconds");
    assert!(
        started <= now && started > now - 600.0,
        "{started} vs {now}"
    );

    // A watched source: its lag appears once its first snapshot is made.
    let docs = d.dir.path().join("docs");
    std::fs::create_dir_all(&docs).expect("mkdir");
    std::fs::write(docs.join("note"), "hello").expect("write");
    json_ok(&d.ctl(&["--json", "source", "add", s(&docs), "--name", "docs"]));
    let lag = scrape_until(addr, "the source's lag", Duration::from_secs(30), |s| {
        s.get(r#"backupd_source_lag_seconds{source="docs"}"#)
            .copied()
    });
    assert!((0.0..60.0).contains(&lag), "{lag}");
    let rpo = scrape_until(addr, "the source's RPO", Duration::from_secs(20), |s| {
        s.get(r#"backupd_source_rpo_seconds{source="docs"}"#)
            .copied()
    });
    assert!(rpo > 0.0, "{rpo}");

    // The format Prometheus reads, and nothing for its linter to complain about.
    let reply = request(addr, "GET", "/metrics").expect("scrape");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(reply.body.as_bytes())
        .expect("feed promtool");
    let checked = check.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool check metrics: {:?}\n{said}\n{}",
        checked.status,
        reply.body
    );
}

#[test]
fn a_prometheus_server_scrapes_the_health_score() {
    let prometheus = Command::new("sh")
        .args(["-c", "command -v prometheus"])
        .output()
        .expect("sh");
    assert!(
        prometheus.status.success(),
        "prometheus not found: install Debian's `prometheus` package (.ci/run does)"
    );
    let (d, target) = metrics_daemon();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: backupd\n    static_configs:\n      \
             - targets: ['{target}']\n"
        ),
    )
    .expect("write config");
    let web = addr(free_port());
    let _server = KillOnDrop(
        Command::new(String::from_utf8_lossy(&prometheus.stdout).trim())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    // What Prometheus stored is what the daemon serves.
    let last = std::cell::RefCell::new(String::new());
    let value = wait_until_else(
        "the daemon's health score in Prometheus",
        Duration::from_secs(20),
        || {
            let reply = request(web, "GET", "/api/v1/query?query=backupd_health_score").ok()?;
            *last.borrow_mut() = reply.body.clone();
            let v: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
            let series = v["data"]["result"].as_array()?.first()?.clone();
            assert_eq!(series["metric"]["job"], "backupd", "{v}");
            let stored = series["value"][1].as_str()?.parse::<f64>().ok()?;
            let served = samples(&scrape(target).ok()?)
                .get("backupd_health_score")
                .copied();
            (served == Some(stored)).then_some(stored)
        },
        || format!("last answer: {}", last.borrow()),
    );
    assert!((0.0..=100.0).contains(&value), "{value}");
    drop(d);
}

/// Whether the daemon has closed `s` (EOF or reset), without waiting.
fn is_closed(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

fn count_closed(idle: &[TcpStream]) -> usize {
    idle.iter().filter(|s| is_closed(s)).count()
}

#[test]
fn idle_connections_oversized_requests_and_wrong_methods_do_not_hurt_the_endpoint() {
    let (d, addr) = metrics_daemon();

    let post = request(addr, "POST", "/metrics").expect("POST");
    assert_eq!(post.status, 405, "{post:?}");
    assert_eq!(
        post.headers.get("allow").map(String::as_str),
        Some("GET, HEAD")
    );
    let other = request(addr, "GET", "/other").expect("GET /other");
    assert_eq!(other.status, 404, "{other:?}");
    let head = request(addr, "HEAD", "/metrics").expect("HEAD");
    assert_eq!((head.status, head.body.as_str()), (200, ""), "{head:?}");

    // A 1 MiB request line is refused (431, or the connection closed under the writer)
    // after at most a few KiB were buffered.
    let mut huge = b"GET /".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    match exchange(addr, &huge) {
        Ok(HttpReply { status, .. }) => assert!(
            status == 431 || status == 414,
            "a 1 MiB request line got {status}"
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
    scrape(addr).expect("a scrape after the oversized request");

    // 100 connections that send nothing: those over the limit are closed at once, the rest
    // when their request head has not come within the header timeout; then a scrape works.
    let started = Instant::now();
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Well before the header timeout (5 s): only the 16 that hold a slot are still open.
    wait_until(
        "the connections over the limit closed",
        Duration::from_secs(3),
        || (count_closed(&idle) >= 100 - 16).then_some(()),
    );
    let body = wait_until(
        "a scrape past the idle ones",
        Duration::from_secs(15),
        || scrape(addr).ok(),
    );
    assert!(body.contains("backupd_health_score"), "{body}");
    wait_until(
        "every idle connection closed",
        Duration::from_secs(10),
        || (count_closed(&idle) == 100).then_some(()),
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // And the daemon itself was never in question.
    assert!(d.ctl(&["system", "health"]).status.success());
}

#[test]
fn the_endpoint_is_off_by_default() {
    let d = TestDaemon::start();
    assert_eq!(
        listening_ports(d.pid()),
        Default::default(),
        "a daemon without [metrics] listens on no TCP port"
    );
}

#[test]
fn a_taken_port_is_logged_and_a_reload_moves_the_endpoint() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let d = TestDaemon::start_with(DaemonOptions {
        config: Some(metrics_config(taken_addr)),
        ..Default::default()
    });
    // The daemon runs on; the log names the key and the address.
    assert!(d.ctl(&["system", "health"]).status.success());
    let line = d.wait_log_line(
        &["metrics.listen", &taken_addr.to_string()],
        Duration::from_secs(5),
    );
    assert!(line.contains("ERROR"), "{line}");
    assert!(!listening_ports(d.pid()).contains(&taken_addr.port()));

    // A reload to a free port serves there.
    let free = addr(free_port());
    std::fs::write(d.config_path(), metrics_config(free)).expect("write");
    let report = json_ok(&d.ctl(&["--json", "system", "reload"]));
    assert_eq!(
        report["applied"],
        serde_json::json!(["metrics.listen"]),
        "{report}"
    );
    scrape(free).expect("scrape on the new address");

    // A reload to the taken port is rejected whole and the endpoint stays where it was.
    std::fs::write(
        d.config_path(),
        format!("{}[queue]\nworkers = 3\n", metrics_config(taken_addr)),
    )
    .expect("write");
    let out = d.ctl(&["system", "reload"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metrics.listen") && err.contains(&taken_addr.to_string()),
        "{err}"
    );
    scrape(free).expect("still served on the old address");
    drop(taken);
}

#[test]
fn a_public_address_needs_allow_public() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    let check = |toml: &str| {
        std::fs::write(&config, toml).expect("write");
        Command::new(bin("backupd"))
            .args(["--check-config", "--config"])
            .arg(&config)
            .output()
            .expect("run")
    };
    let refused = check("[metrics]\nlisten = \"0.0.0.0:9911\"\n");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("metrics.listen") && err.contains("allow_public"),
        "{err}"
    );
    let allowed = check("[metrics]\nlisten = \"0.0.0.0:9911\"\nallow_public = true\n");
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    let loopback = check("[metrics]\nlisten = \"[::1]:9911\"\n");
    assert!(loopback.status.success());
}

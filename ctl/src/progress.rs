//! A one-line progress display on stderr for `--wait` on a terminal.

use backupd_common::protocol::OperationProgress;
use std::io::{IsTerminal, Write};

#[derive(Debug)]
pub struct Bar {
    enabled: bool,
    drawn: bool,
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Bar {
    /// Draws only when asked to wait and stderr is a terminal.
    pub fn new(wait: bool) -> Self {
        Self {
            enabled: wait && std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    pub fn update(&mut self, p: &OperationProgress) {
        if !self.enabled {
            return;
        }
        let secs = (p.elapsed_ms as f64 / 1000.0).max(0.001);
        let rate = p.bytes_done as f64 / secs;
        let mut line = match (p.files_total, p.bytes_total) {
            (Some(ft), Some(bt)) if bt > 0 => {
                let pct = (p.bytes_done as f64 / bt as f64 * 100.0).min(100.0);
                let eta = if rate > 0.0 {
                    format!(
                        " ETA {:.0}s",
                        (bt.saturating_sub(p.bytes_done)) as f64 / rate
                    )
                } else {
                    String::new()
                };
                format!(
                    "{pct:5.1}% {}/{ft} files {} / {}{eta}",
                    p.files_done,
                    bytes(p.bytes_done),
                    bytes(bt)
                )
            }
            _ => format!(
                "{} {}",
                crate::output::count(p.files_done, "file"),
                bytes(p.bytes_done)
            ),
        };
        line.push_str(&format!(" {}/s", bytes(rate as u64)));
        if p.errors > 0 {
            line.push_str(&format!(" {}", crate::output::count(p.errors, "error")));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Bytes only, for work on one stream (`security encrypt|decrypt`).
    pub fn update_bytes(&mut self, p: &OperationProgress) {
        if !self.enabled {
            return;
        }
        let secs = (p.elapsed_ms as f64 / 1000.0).max(0.001);
        let rate = p.bytes_done as f64 / secs;
        let mut line = match p.bytes_total {
            Some(total) if total > 0 => format!(
                "{:5.1}% {} / {}",
                (p.bytes_done as f64 / total as f64 * 100.0).min(100.0),
                bytes(p.bytes_done),
                bytes(total)
            ),
            _ => bytes(p.bytes_done),
        };
        line.push_str(&format!(" {}/s", bytes(rate as u64)));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    pub fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

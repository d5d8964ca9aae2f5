//! `backupctl recovery objectives`: per source the RPO and RTO achieved against their targets,
//! and the last drill, as a table or `--json` (`json::recovery::ObjectivesView`).

use super::recovery_drill::human_ms;
use super::Failure;
use crate::client::Client;
use crate::exit::ExitCode;
use crate::json::recovery::{ObjectivesView, SourceObjectivesView};
use crate::output::Output;
use comfy_table::{presets, Table};

pub async fn run(client: &mut Client, out: &Output) -> Result<ExitCode, Failure> {
    let objectives = client.objectives().await?;
    let view = ObjectivesView::from(&objectives);
    out.value(&view, || text(&view));
    let missed = view.sources.iter().any(|s| !s.rpo.met || !s.rto.met);
    Ok(if missed {
        ExitCode::Warning
    } else {
        ExitCode::Ok
    })
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn opt_ms(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_owned(), human_ms)
}

fn drill(s: &SourceObjectivesView) -> String {
    match &s.last_drill {
        None => "never".into(),
        Some(d) => format!(
            "{} {}{}",
            d.time,
            if d.ok { "passed" } else { "FAILED" },
            d.rto_per_gb_ms
                .map(|ms| format!(", {}/GB", human_ms(ms)))
                .unwrap_or_default()
        ),
    }
}

fn text(v: &ObjectivesView) -> String {
    if v.sources.is_empty() {
        return "no watched sources (`backupctl source add PATH`)".into();
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(vec![
        "source",
        "rpo",
        "worst 30d",
        "target",
        "",
        "rto estimate",
        "target",
        "",
        "last drill",
    ]);
    for s in &v.sources {
        t.add_row(vec![
            s.name.clone(),
            opt_ms(s.rpo.achieved_ms),
            opt_ms(s.rpo.worst_gap_ms),
            human_ms(s.rpo.target_ms),
            met(s.rpo.met).to_owned(),
            opt_ms(s.rto.estimate_ms),
            human_ms(s.rto.target_ms),
            met(s.rto.met).to_owned(),
            drill(s),
        ]);
    }
    let mut text = t.to_string();
    text.push_str(&format!("\nrestore throughput: {}", v.throughput.note));
    for s in &v.sources {
        if let Some(note) = &s.note {
            text.push_str(&format!("\n{}: {note}", s.name));
        }
    }
    text
}

//! Which requests the audit log records, as what, and what they acted on. One exhaustive match
//! per question, so a new request variant does not compile until someone decides. Pure reads
//! that reveal no data (health, whoami, queue status, listings of names) are not recorded: a
//! monitoring loop must not fill the log, and the read path must stay as fast as without it.

use backupd_common::paths::escape_path;
use backupd_common::protocol::{
    AnalyticsRequest, AuditTarget, BrowseRequest, EventType, JobKind, PerfRequest, QueueRequest,
    RecoveryRequest, RepoRequest, Request, SecurityRequest, Severity, SourceRequest, SyncRequest,
    SystemRequest, MAX_TARGET_PATHS, MAX_TARGET_PATH_CHARS,
};

/// How a request is recorded when it is answered; `None`: not recorded (its denial still is).
pub fn classify(request: &Request) -> Option<(EventType, Severity)> {
    use EventType as E;
    use Severity as S;
    let class = match request {
        Request::System(r) => match r {
            SystemRequest::Health | SystemRequest::WatchHealth { .. } | SystemRequest::Whoami => {
                return None
            }
            SystemRequest::Reload | SystemRequest::Shutdown => (E::Config, S::Notice),
            // The export names every repository and source: data about the machine.
            SystemRequest::ExportState => (E::Config, S::Notice),
            SystemRequest::ImportState { .. } => (E::Config, S::Warning),
        },
        Request::Repo(r) => match r {
            RepoRequest::List | RepoRequest::Info { .. } => return None,
            RepoRequest::Init { .. } | RepoRequest::Add { .. } => (E::Repo, S::Notice),
            RepoRequest::Remove { .. } => (E::Repo, S::Warning),
            RepoRequest::KeyExport { .. } => (E::Key, S::Warning),
            RepoRequest::KeyAdd { .. }
            | RepoRequest::KeyPasswd { .. }
            | RepoRequest::KeyRotate { .. }
            | RepoRequest::KeyRemove { .. } => (E::Key, S::Warning),
            RepoRequest::KeyList { .. } => (E::Key, S::Info),
            // Reads what snapshots hold.
            RepoRequest::Stats(_) => (E::Repo, S::Info),
            RepoRequest::InitReplica(_) | RepoRequest::ReplicateAdd(_) => (E::Repo, S::Notice),
            RepoRequest::ReplicateRemove { .. } => (E::Repo, S::Warning),
            RepoRequest::ReplicateList => return None,
        },
        Request::Snapshots(_) => (E::Repo, S::Info),
        Request::Queue(r) => match r {
            QueueRequest::Submit(spec) => match &spec.kind {
                JobKind::Backup(_) => (E::Backup, S::Info),
                JobKind::Restore(_) => (E::Restore, S::Notice),
                JobKind::Check(_) | JobKind::RebuildIndex(_) => (E::Repo, S::Info),
                JobKind::Forget(_) => (E::Forget, S::Notice),
                JobKind::Noop(_) => (E::Queue, S::Debug),
                // Retires data keys: destroys key material for good.
                JobKind::Reencrypt(_) => (E::Key, S::Warning),
                JobKind::Migrate(_) => (E::Repo, S::Warning),
                JobKind::Prune(_) => (E::Forget, S::Notice),
                JobKind::Sync(_) => (E::Source, S::Info),
                JobKind::Replicate(_) => (E::Repo, S::Info),
                // Replaces directories as the daemon.
                JobKind::Recovery(_) => (E::Restore, S::Warning),
                // Restores data (into scratch space it deletes).
                JobKind::Drill(_) => (E::Restore, S::Info),
            },
            QueueRequest::Status | QueueRequest::Workers { count: None } => return None,
            // Job records carry results: paths, snapshot ids, errors.
            QueueRequest::Job { .. }
            | QueueRequest::Wait { .. }
            | QueueRequest::DeadLetters
            | QueueRequest::History(_) => (E::Queue, S::Info),
            QueueRequest::Events { .. } => (E::Queue, S::Debug),
            QueueRequest::Cancel { .. } | QueueRequest::RetryDeadLetter { .. } => {
                (E::Queue, S::Notice)
            }
            QueueRequest::PurgeDeadLetters => (E::Queue, S::Warning),
            QueueRequest::Workers { count: Some(_) } => (E::Config, S::Notice),
        },
        Request::Source(r) => match r {
            SourceRequest::List | SourceRequest::Show { .. } => return None,
            SourceRequest::Add(_) | SourceRequest::Set(_) => (E::Source, S::Notice),
            SourceRequest::Remove { .. } => (E::Source, S::Warning),
        },
        Request::Security(r) => match r {
            SecurityRequest::Audit(_) | SecurityRequest::AuditVerify => (E::Security, S::Info),
            // Who may do what: changing it matters more than any other request.
            SecurityRequest::Grant { .. } | SecurityRequest::Revoke(_) => (E::Security, S::Warning),
            SecurityRequest::Bindings | SecurityRequest::Check { .. } => (E::Security, S::Info),
            SecurityRequest::Alerts { .. }
            | SecurityRequest::Compliance { .. }
            | SecurityRequest::Report { .. } => (E::Security, S::Info),
            SecurityRequest::AckAlert { .. } => (E::Alert, S::Notice),
            // Lifting a lockout lets a uid that set off an alert back in.
            SecurityRequest::Unlock { .. } => (E::Security, S::Warning),
            // Work with a repository's data key on files outside it.
            SecurityRequest::Encrypt(_) | SecurityRequest::Decrypt(_) => (E::Key, S::Notice),
        },
        Request::Perf(r) if r.changes_state() => (E::Config, S::Notice),
        Request::Perf(_) => return None,
        Request::Sync(r) => match r {
            SyncRequest::List
            | SyncRequest::Show { .. }
            | SyncRequest::History { .. }
            | SyncRequest::Conflicts { .. } => return None,
            SyncRequest::Add(_)
            | SyncRequest::Pause { .. }
            | SyncRequest::Resume { .. }
            | SyncRequest::Resolve { .. } => (E::Source, S::Notice),
            SyncRequest::Remove { .. } => (E::Source, S::Warning),
        },
        Request::Recovery(r) => match r {
            RecoveryRequest::Status { .. } | RecoveryRequest::List => return None,
            // Read what snapshots hold; objectives name sources and snapshots, as `snapshots`
            // does.
            RecoveryRequest::Fitness(_)
            | RecoveryRequest::Select(_)
            | RecoveryRequest::Objectives => (E::Repo, S::Info),
            RecoveryRequest::Plan(_) => (E::Restore, S::Notice),
        },
        // Names and metadata of a snapshot's files, like a snapshot listing.
        Request::Browse(BrowseRequest::Ls(_) | BrowseRequest::Find(_) | BrowseRequest::Diff(_)) => {
            (E::Repo, S::Info)
        }
        // A file's content leaves the repository, as in a restore.
        Request::Browse(BrowseRequest::Cat(_)) => (E::Restore, S::Info),
        // Releasing a hold lets retention delete the snapshots it kept.
        Request::Analytics(AnalyticsRequest::Release { .. }) => (E::Forget, S::Warning),
        Request::Analytics(_) => return None,
    };
    Some(class)
}

/// What `request` acts on. Only names, ids and paths: never a passphrase, key or document body.
pub fn target(request: &Request) -> AuditTarget {
    let mut t = AuditTarget::default();
    match request {
        Request::System(r) => match r {
            SystemRequest::ImportState { document } => {
                t.name = Some(format!("state document of {} bytes", document.len()));
            }
            SystemRequest::Health
            | SystemRequest::WatchHealth { .. }
            | SystemRequest::Whoami
            | SystemRequest::Reload
            | SystemRequest::Shutdown
            | SystemRequest::ExportState => {}
        },
        Request::Repo(r) => match r {
            RepoRequest::Init { name, path, .. } | RepoRequest::Add { name, path, .. } => {
                t.repo = Some(name.clone());
                push_paths(&mut t, std::slice::from_ref(path));
            }
            RepoRequest::KeyExport { name } | RepoRequest::Remove { name } => {
                t.repo = Some(name.clone());
            }
            RepoRequest::Info { name }
            | RepoRequest::KeyAdd { name, .. }
            | RepoRequest::KeyPasswd { name, .. }
            | RepoRequest::KeyRotate { name }
            | RepoRequest::KeyList { name }
            | RepoRequest::KeyRemove { name, .. } => t.repo = name.clone(),
            RepoRequest::Stats(s) => {
                t.repo = s.repo.clone();
                t.snapshot = first(&s.snapshots);
            }
            RepoRequest::List | RepoRequest::ReplicateList => {}
            RepoRequest::InitReplica(r) => {
                t.repo = Some(r.name.clone());
                push_paths(&mut t, std::slice::from_ref(&r.path));
            }
            RepoRequest::ReplicateAdd(spec) => t.repo = Some(spec.to.clone()),
            RepoRequest::ReplicateRemove { to } => t.repo = Some(to.clone()),
        },
        Request::Snapshots(s) => {
            t.repo = s.repo.clone();
            if let Some(p) = &s.filter.path {
                push_paths(&mut t, std::slice::from_ref(p));
            }
        }
        Request::Queue(r) => queue_target(&mut t, r),
        Request::Source(r) => match r {
            SourceRequest::Add(spec) | SourceRequest::Set(spec) => {
                t.name = Some(spec.name.clone());
                t.repo = spec.repo.clone();
                push_paths(&mut t, std::slice::from_ref(&spec.path));
            }
            SourceRequest::Remove { name } | SourceRequest::Show { name } => {
                t.name = Some(name.clone())
            }
            SourceRequest::List => {}
        },
        Request::Security(r) => match r {
            SecurityRequest::Grant {
                role,
                subject,
                repos,
                ..
            } => {
                t.name = Some(format!("{role} for {subject}"));
                t.repo = (!repos.is_empty()).then(|| repos.join(","));
            }
            SecurityRequest::Revoke(target) => t.name = Some(format!("{target:?}")),
            SecurityRequest::Check {
                uid,
                permission,
                repo,
            } => {
                t.name = Some(format!("{permission} for uid {uid}"));
                t.repo = repo.clone();
            }
            SecurityRequest::AckAlert { id } => t.name = Some(format!("alert {id}")),
            // The files as the daemon's kernel names the passed descriptors.
            SecurityRequest::Encrypt(f) | SecurityRequest::Decrypt(f) => {
                t.repo = f.repo.clone();
                push_paths(&mut t, &[f.input.clone(), f.output.clone()]);
            }
            SecurityRequest::Unlock { uid } => t.name = Some(format!("uid {uid}")),
            SecurityRequest::Audit(_)
            | SecurityRequest::AuditVerify
            | SecurityRequest::Bindings
            | SecurityRequest::Alerts { .. }
            | SecurityRequest::Compliance { .. }
            | SecurityRequest::Report { .. } => {}
        },
        Request::Perf(PerfRequest::Auto { on }) => {
            t.name = Some(format!(
                "automatic tuning {}",
                if *on { "on" } else { "off" }
            ));
        }
        Request::Perf(_) => {}
        Request::Sync(r) => match r {
            SyncRequest::Add(spec) => {
                t.name = Some(spec.name.clone());
                push_paths(&mut t, &[spec.src.clone(), spec.dst.clone()]);
            }
            SyncRequest::Resolve { name, path, .. } => {
                t.name = Some(name.clone());
                push_paths(&mut t, std::slice::from_ref(path));
            }
            SyncRequest::Show { name }
            | SyncRequest::Remove { name }
            | SyncRequest::Pause { name }
            | SyncRequest::Resume { name }
            | SyncRequest::History { name, .. }
            | SyncRequest::Conflicts { name } => t.name = Some(name.clone()),
            SyncRequest::List => {}
        },
        Request::Recovery(r) => match r {
            RecoveryRequest::Plan(p) => {
                t.repo = p.repo.clone();
                t.snapshot = p.snapshot.clone();
                let paths: Vec<Vec<u8>> = std::iter::once(p.path.clone())
                    .chain(p.target.clone())
                    .collect();
                push_paths(&mut t, &paths);
            }
            RecoveryRequest::Status { plan } => t.name = Some(format!("recovery plan {plan}")),
            RecoveryRequest::Fitness(f) | RecoveryRequest::Select(f) => t.repo = f.repo.clone(),
            RecoveryRequest::List | RecoveryRequest::Objectives => {}
        },
        Request::Browse(r) => browse_target(&mut t, r),
        Request::Analytics(AnalyticsRequest::Release { source }) => {
            t.name = Some(format!("retention hold of source {source}"));
        }
        Request::Analytics(_) => {}
    }
    t
}

fn browse_target(t: &mut AuditTarget, r: &BrowseRequest) {
    match r {
        BrowseRequest::Ls(l) => {
            t.repo = l.repo.clone();
            t.snapshot = Some(l.snapshot.clone());
            push_paths(t, l.path.as_slice());
        }
        BrowseRequest::Find(f) => {
            t.repo = f.repo.clone();
            t.name = Some(format!("pattern {}", escape_path(f.pattern.as_bytes())));
            t.snapshot = first(&f.snapshots);
            push_paths(t, f.path.as_slice());
        }
        BrowseRequest::Diff(d) => {
            t.repo = d.repo.clone();
            t.snapshot = Some(format!("{} {}", d.from, d.to));
            push_paths(t, d.path.as_slice());
        }
        BrowseRequest::Cat(c) => {
            t.repo = c.repo.clone();
            t.snapshot = Some(c.snapshot.clone());
            push_paths(t, std::slice::from_ref(&c.path));
        }
    }
}

fn queue_target(t: &mut AuditTarget, r: &QueueRequest) {
    match r {
        QueueRequest::Submit(spec) => match &spec.kind {
            JobKind::Sync(s) => t.name = Some(s.pair.clone()),
            JobKind::Backup(b) => {
                t.repo = b.repo.clone();
                push_paths(t, &b.paths);
            }
            JobKind::Restore(r) => {
                t.repo = r.repo.clone();
                t.snapshot = Some(r.snapshot.clone());
                let paths: Vec<Vec<u8>> = r.subpath.iter().chain(&r.target).cloned().collect();
                push_paths(t, &paths);
            }
            JobKind::Check(c) => t.repo = c.repo.clone(),
            JobKind::RebuildIndex(r) => t.repo = r.repo.clone(),
            JobKind::Reencrypt(r) => t.repo = r.repo.clone(),
            JobKind::Migrate(r) => t.repo = r.repo.clone(),
            JobKind::Prune(r) => t.repo = r.repo.clone(),
            JobKind::Replicate(r) => t.repo = r.repo.clone(),
            JobKind::Recovery(r) => t.name = Some(format!("recovery plan {}", r.plan)),
            JobKind::Drill(d) => {
                t.repo = d.repo.clone();
                t.name = d.source.clone();
            }
            JobKind::Forget(f) => {
                t.repo = f.repo.clone();
                t.snapshot = first(&f.snapshots);
            }
            JobKind::Noop(_) => {}
        },
        QueueRequest::Job { id }
        | QueueRequest::Wait { id }
        | QueueRequest::Cancel { id }
        | QueueRequest::RetryDeadLetter { id } => t.job = Some(id.to_string()),
        QueueRequest::Status
        | QueueRequest::DeadLetters
        | QueueRequest::PurgeDeadLetters
        | QueueRequest::History(_)
        | QueueRequest::Workers { .. }
        | QueueRequest::Events { .. } => {}
    }
}

fn first(items: &[String]) -> Option<String> {
    items.first().map(|s| bounded(s.clone()))
}

/// Adds paths, escaped and bounded, counting those beyond the cap.
fn push_paths(t: &mut AuditTarget, paths: &[Vec<u8>]) {
    for p in paths {
        if t.paths.len() < MAX_TARGET_PATHS {
            t.paths.push(bounded(escape_path(p)));
        } else {
            t.paths_omitted += 1;
        }
    }
}

fn bounded(mut text: String) -> String {
    if text.chars().count() > MAX_TARGET_PATH_CHARS {
        text = text.chars().take(MAX_TARGET_PATH_CHARS).collect();
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use backupd_common::protocol::{BackupRequest, JobOptions, JobSpec, Secret};

    #[test]
    fn reads_that_reveal_nothing_are_not_recorded_and_key_requests_are() {
        assert_eq!(classify(&Request::System(SystemRequest::Health)), None);
        assert_eq!(classify(&Request::Queue(QueueRequest::Status)), None);
        let export = Request::Repo(RepoRequest::KeyExport { name: "r".into() });
        assert_eq!(classify(&export), Some((EventType::Key, Severity::Warning)));
    }

    #[test]
    fn targets_never_carry_passphrases_and_paths_are_bounded() {
        let init = Request::Repo(RepoRequest::Init {
            name: "main".into(),
            path: b"/srv/repo".to_vec(),
            password: Some(Secret(b"hunter2-secret".to_vec())),
            credentials: Some(Secret(b"aws_secret_access_key=hunter3".to_vec())),
        });
        let text = serde_json::to_string(&target(&init)).expect("serialises");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("hunter3"), "{text}");
        assert!(text.contains("/srv/repo"));

        let backup = Request::Queue(QueueRequest::Submit(Box::new(JobSpec {
            kind: JobKind::Backup(BackupRequest {
                paths: (0..100).map(|i| format!("/d/{i}").into_bytes()).collect(),
                ..Default::default()
            }),
            options: JobOptions::default(),
        })));
        let t = target(&backup);
        assert_eq!(t.paths.len(), MAX_TARGET_PATHS);
        assert_eq!(t.paths_omitted, 100 - MAX_TARGET_PATHS as u64);
        assert_eq!(
            bounded("x".repeat(5000)).chars().count(),
            MAX_TARGET_PATH_CHARS + 1
        );
    }
}

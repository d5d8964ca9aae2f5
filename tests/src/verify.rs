//! The one check helper and the one restore(-and-compare) helper of the end-to-end tests.

use crate::{ctl_within, json_ok, treecmp, TestDaemon};
use std::path::Path;
use std::time::Duration;

impl TestDaemon {
    /// `repo check --read-data` of `repo` (the default repository if `None`): it must succeed
    /// and find no problem. Returns the report.
    pub fn check_clean(&self, repo: Option<&str>) -> serde_json::Value {
        let mut args = vec!["--json", "repo", "check", "--read-data"];
        if let Some(r) = repo {
            args.extend(["--repo", r]);
        }
        let check = json_ok(&self.ctl(&args));
        assert_eq!(check["problems"], serde_json::json!([]), "{check:#}");
        check
    }

    /// Restores `latest:SRC` into `target` (`extra`: more restore arguments such as `--repo R`)
    /// and returns the restore's result.
    pub fn restore_latest(&self, src: &Path, target: &Path, extra: &[&str]) -> serde_json::Value {
        let latest = format!("latest:{}", src.display());
        let target_arg = target.to_str().expect("UTF-8 target path");
        let mut args = vec!["--json", "restore", &latest, "--target", target_arg];
        args.extend_from_slice(extra);
        json_ok(&ctl_within(&self.socket, &args, Duration::from_secs(300)))
    }

    /// [`TestDaemon::restore_latest`], then asserts that nothing failed and that the restored
    /// tree equals `src` as `opts` says. Returns the restore's result.
    pub fn restore_and_compare(
        &self,
        src: &Path,
        target: &Path,
        extra: &[&str],
        opts: treecmp::CompareOptions,
    ) -> serde_json::Value {
        let r = self.restore_latest(src, target, extra);
        assert!(r["failed"].as_array().is_some_and(Vec::is_empty), "{r}");
        let diffs = treecmp::compare_trees(src, target, opts);
        assert!(
            diffs.is_empty(),
            "{} differs from {}: {diffs:#?}",
            target.display(),
            src.display()
        );
        r
    }
}

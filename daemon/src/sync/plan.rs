//! What a sync run does with one path, as a pure function of what the pair's state knew at the
//! last sync and what each side holds now ([`plan`]), and how a two-way conflict is decided
//! ([`resolve`]). No file system, no clock: the table tests below are the rules.
//!
//! A side "changed" when its size, mtime, ctime, inode or kind differ from the stamp the state
//! recorded for that side; a side that is unchanged is never read. A file changed on both sides
//! (or present on both without a record) is compared by content first ([`Decision::Compare`]):
//! equal contents are only recorded.

use backupd_common::protocol::{SyncMode, SyncStrategy};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One side's metadata of a path, as a scan sees it (`lstat`: symlinks are not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    pub kind: Kind,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
}

impl Stamp {
    /// Whether the content may differ from what `known` recorded. A directory's own times
    /// change with its entries, so only its kind counts.
    pub fn changed_since(&self, known: &Stamp) -> bool {
        if self.kind == Kind::Dir && known.kind == Kind::Dir {
            return false;
        }
        self != known
    }
}

/// What the state recorded for a path at its last sync: each side's stamp then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Known {
    pub src: Stamp,
    pub dst: Stamp,
    /// SHA-256 of the content (of the target for a symlink; zero for a directory).
    pub hash: [u8; 32],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// SRC ("local").
    Src,
    /// DST ("remote").
    Dst,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Src => Side::Dst,
            Side::Dst => Side::Src,
        }
    }
}

/// A two-way conflict: how each side differs from the last sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// Changed on both sides to different contents.
    BothChanged,
    /// Deleted on `deleted`, changed on the other side.
    DeleteChanged { deleted: Side },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Keep,
    /// Copy the entry from `from` to the other side (a directory: create it).
    Copy { from: Side },
    /// Move the entry on this side into that side's trash (a directory: remove it once empty).
    Trash(Side),
    /// Gone on both sides (or no longer followed): drop the record.
    Forget,
    /// Present on both sides, content unknown to be equal: hash both; equal contents are
    /// recorded, different ones go to `otherwise`.
    Compare { otherwise: Otherwise },
    /// A two-way conflict for the strategy.
    Conflict(Conflict),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Otherwise {
    CopyFromSrc,
    Conflict,
}

/// The decision for one path. `src` and `dst` are what the scans found (`None`: absent),
/// `known` what the state recorded at the last sync.
pub fn plan(
    mode: SyncMode,
    delete: bool,
    known: Option<&Known>,
    src: Option<&Stamp>,
    dst: Option<&Stamp>,
) -> Decision {
    use Decision::*;
    let dirs = |a: &Stamp, b: &Stamp| a.kind == Kind::Dir && b.kind == Kind::Dir;
    match mode {
        SyncMode::Mirror => match (src, dst) {
            (None, None) => {
                if known.is_some() {
                    Forget
                } else {
                    Keep
                }
            }
            (Some(_), None) => Copy { from: Side::Src },
            (None, Some(_)) if delete => Trash(Side::Dst),
            (None, Some(_)) => {
                if known.is_some() {
                    Forget
                } else {
                    Keep
                }
            }
            (Some(s), Some(d)) if dirs(s, d) => Keep,
            (Some(s), Some(d)) if s.kind != d.kind => Copy { from: Side::Src },
            (Some(s), Some(d)) => match known {
                None => Compare {
                    otherwise: Otherwise::CopyFromSrc,
                },
                Some(k) if !s.changed_since(&k.src) && !d.changed_since(&k.dst) => Keep,
                Some(_) => Copy { from: Side::Src },
            },
        },
        SyncMode::TwoWay => {
            let changed = |now: &Stamp, side: Side| {
                known.is_none_or(|k| {
                    now.changed_since(match side {
                        Side::Src => &k.src,
                        Side::Dst => &k.dst,
                    })
                })
            };
            match (src, dst) {
                (None, None) => {
                    if known.is_some() {
                        Forget
                    } else {
                        Keep
                    }
                }
                (Some(s), None) => {
                    one_side(known.is_some(), changed(s, Side::Src), Side::Src, delete)
                }
                (None, Some(d)) => {
                    one_side(known.is_some(), changed(d, Side::Dst), Side::Dst, delete)
                }
                (Some(s), Some(d)) if dirs(s, d) => Keep,
                (Some(s), Some(d)) => match (changed(s, Side::Src), changed(d, Side::Dst)) {
                    (false, false) => Keep,
                    (true, false) => Copy { from: Side::Src },
                    (false, true) => Copy { from: Side::Dst },
                    (true, true) => Compare {
                        otherwise: Otherwise::Conflict,
                    },
                },
            }
        }
    }
}

/// Two-way: the path is only on `present`. Without a record it is new there; with one, the
/// other side deleted it.
fn one_side(known: bool, changed: bool, present: Side, delete: bool) -> Decision {
    if !known {
        return Decision::Copy { from: present };
    }
    if changed {
        // Never a silent delete of a change.
        return Decision::Conflict(Conflict::DeleteChanged {
            deleted: present.other(),
        });
    }
    if delete {
        Decision::Trash(present)
    } else {
        Decision::Copy { from: present }
    }
}

/// How a conflict ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// `winner`'s version (or its deletion) goes to the other side.
    Take(Side),
    /// SRC's version wins; DST's is kept beside it under a conflict name (on both sides).
    KeepBoth,
    /// Left for `sync resolve`.
    Pending,
}

/// The strategy's answer for a conflict; `src`/`dst` are the sides now (`None`: deleted).
/// A deletion never wins under `newer`, `larger` or `keep-both`: the surviving change does.
pub fn resolve(strategy: SyncStrategy, src: Option<&Stamp>, dst: Option<&Stamp>) -> Resolution {
    use Resolution::*;
    let survivor = match (src, dst) {
        (Some(_), None) => Some(Side::Src),
        (None, Some(_)) => Some(Side::Dst),
        _ => None,
    };
    match strategy {
        SyncStrategy::Local => Take(Side::Src),
        SyncStrategy::Remote => Take(Side::Dst),
        SyncStrategy::Manual => Pending,
        SyncStrategy::KeepBoth => match survivor {
            Some(side) => Take(side),
            None => KeepBoth,
        },
        SyncStrategy::Newer | SyncStrategy::Larger => match (src, dst, survivor) {
            (_, _, Some(side)) => Take(side),
            (Some(s), Some(d), None) => {
                let dst_wins = if strategy == SyncStrategy::Newer {
                    d.mtime_ns > s.mtime_ns
                } else {
                    d.size > s.size
                };
                Take(if dst_wins { Side::Dst } else { Side::Src })
            }
            _ => Take(Side::Src),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    fn f(size: u64, mtime: i64) -> Stamp {
        Stamp {
            kind: Kind::File,
            size,
            mtime_ns: mtime,
            ctime_ns: mtime,
            ino: 7,
        }
    }

    fn dir() -> Stamp {
        Stamp {
            kind: Kind::Dir,
            size: 0,
            mtime_ns: 1,
            ctime_ns: 1,
            ino: 9,
        }
    }

    /// name, --delete, the state's record, SRC now, DST now, the decision wanted.
    type Case = (
        &'static str,
        bool,
        Option<Known>,
        Option<Stamp>,
        Option<Stamp>,
        Decision,
    );

    fn known(src: Stamp, dst: Stamp) -> Known {
        Known {
            src,
            dst,
            hash: [0; 32],
        }
    }

    #[test]
    fn mirror_decisions_follow_src() {
        let (a, b, c) = (f(1, 10), f(1, 11), f(2, 12));
        let k = known(a, b);
        let cases: Vec<Case> = vec![
            ("unchanged", true, Some(k), Some(a), Some(b), Keep),
            (
                "src edited",
                true,
                Some(k),
                Some(c),
                Some(b),
                Copy { from: Side::Src },
            ),
            (
                "dst edited: restored",
                true,
                Some(k),
                Some(a),
                Some(c),
                Copy { from: Side::Src },
            ),
            (
                "new in src",
                true,
                None,
                Some(a),
                None,
                Copy { from: Side::Src },
            ),
            (
                "dst lost the file",
                true,
                Some(k),
                Some(a),
                None,
                Copy { from: Side::Src },
            ),
            (
                "deleted in src",
                true,
                Some(k),
                None,
                Some(b),
                Trash(Side::Dst),
            ),
            (
                "deleted in src, --no-delete",
                false,
                Some(k),
                None,
                Some(b),
                Forget,
            ),
            (
                "only in dst, --delete",
                true,
                None,
                None,
                Some(b),
                Trash(Side::Dst),
            ),
            ("only in dst, --no-delete", false, None, None, Some(b), Keep),
            ("gone on both", true, Some(k), None, None, Forget),
            (
                "both present, no record",
                true,
                None,
                Some(a),
                Some(b),
                Compare {
                    otherwise: Otherwise::CopyFromSrc,
                },
            ),
            ("dirs", true, None, Some(dir()), Some(dir()), Keep),
            (
                "file replaced a dir",
                true,
                None,
                Some(a),
                Some(dir()),
                Copy { from: Side::Src },
            ),
        ];
        for (name, delete, k, s, d, want) in cases {
            let got = plan(SyncMode::Mirror, delete, k.as_ref(), s.as_ref(), d.as_ref());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn two_way_decisions_and_conflicts_come_from_the_state_not_timestamps() {
        let (a, b) = (f(1, 10), f(1, 11));
        let (a2, b2) = (f(5, 5), f(6, 6));
        let k = known(a, b);
        let cases: Vec<Case> = vec![
            ("unchanged", true, Some(k), Some(a), Some(b), Keep),
            (
                "changed in src",
                true,
                Some(k),
                Some(a2),
                Some(b),
                Copy { from: Side::Src },
            ),
            // Older mtime than the other side, still the only change: it wins.
            (
                "changed in dst",
                true,
                Some(k),
                Some(a),
                Some(b2),
                Copy { from: Side::Dst },
            ),
            (
                "changed on both",
                true,
                Some(k),
                Some(a2),
                Some(b2),
                Compare {
                    otherwise: Otherwise::Conflict,
                },
            ),
            (
                "new in src",
                true,
                None,
                Some(a),
                None,
                Copy { from: Side::Src },
            ),
            (
                "new in dst",
                true,
                None,
                None,
                Some(b),
                Copy { from: Side::Dst },
            ),
            (
                "new on both",
                true,
                None,
                Some(a),
                Some(b),
                Compare {
                    otherwise: Otherwise::Conflict,
                },
            ),
            (
                "deleted in dst",
                true,
                Some(k),
                Some(a),
                None,
                Trash(Side::Src),
            ),
            (
                "deleted in src",
                true,
                Some(k),
                None,
                Some(b),
                Trash(Side::Dst),
            ),
            (
                "deleted in dst, --no-delete",
                false,
                Some(k),
                Some(a),
                None,
                Copy { from: Side::Src },
            ),
            (
                "deleted in dst, changed in src",
                true,
                Some(k),
                Some(a2),
                None,
                Conflict(super::Conflict::DeleteChanged { deleted: Side::Dst }),
            ),
            (
                "deleted in src, changed in dst",
                true,
                Some(k),
                None,
                Some(b2),
                Conflict(super::Conflict::DeleteChanged { deleted: Side::Src }),
            ),
            ("gone on both", true, Some(k), None, None, Forget),
            (
                "new dir in dst",
                true,
                None,
                None,
                Some(dir()),
                Copy { from: Side::Dst },
            ),
        ];
        for (name, delete, k, s, d, want) in cases {
            let got = plan(SyncMode::TwoWay, delete, k.as_ref(), s.as_ref(), d.as_ref());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn strategies_decide_conflicts_and_deletions_never_win_silently() {
        use Resolution::{Pending, Take};
        use SyncStrategy::{Larger, Local, Manual, Newer, Remote};
        let (old_small, new_big) = (f(1, 10), f(9, 20));
        let cases = [
            (Newer, Some(old_small), Some(new_big), Take(Side::Dst)),
            (Newer, Some(new_big), Some(old_small), Take(Side::Src)),
            (Larger, Some(new_big), Some(old_small), Take(Side::Src)),
            (Larger, Some(old_small), Some(new_big), Take(Side::Dst)),
            (Local, Some(old_small), Some(new_big), Take(Side::Src)),
            (Remote, Some(new_big), Some(old_small), Take(Side::Dst)),
            (
                SyncStrategy::KeepBoth,
                Some(old_small),
                Some(new_big),
                Resolution::KeepBoth,
            ),
            (Manual, Some(old_small), Some(new_big), Pending),
            (Newer, None, Some(old_small), Take(Side::Dst)),
            (Larger, Some(old_small), None, Take(Side::Src)),
            (
                SyncStrategy::KeepBoth,
                None,
                Some(old_small),
                Take(Side::Dst),
            ),
            (Manual, None, Some(old_small), Pending),
        ];
        for (strategy, s, d, want) in cases {
            assert_eq!(
                resolve(strategy, s.as_ref(), d.as_ref()),
                want,
                "{strategy:?} {s:?} {d:?}"
            );
        }
    }
}

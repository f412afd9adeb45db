//! The quota invariant under random interleavings of uploads, overwrites, resumes, aborts,
//! removals, moves and directory changes from several sessions of one user, on real files.
//!
//! Each step is what a session's disk job does (open the partial, reserve, write, publish or
//! drop, settle; remove and adjust; rename; create or remove a directory), in the order the
//! steps of several sessions may interleave. After every step the figures must tell the truth
//! about the disk and the limits:
//!
//! - the bytes and entries on disk (files, directories, partials) equal the ledger's figures
//!   plus what live uploads have changed since they settled;
//! - `used + reserved` never passes the byte limit, nor `files + files_reserved` the entry
//!   limit, so the disk never does either;
//! - no live upload has written more than it reserved, or created an entry it did not reserve.

use ftp_actor::integrity::{Digest, Md5};
use ftp_actor::quota::{DiskChange, Ledger, ReservationId, upload_need};
use ftp_actor::storage::{
    DigestIndex, LocalStore, PartialUpload, PathLimits, ResumeStates, StorageError, UploadSession, VirtualPath,
};
use proptest::prelude::*;

const SESSIONS: usize = 3;
const NAMES: [&str; 4] = ["a", "b", "d/c", "e"];

#[derive(Debug, Clone)]
enum Step {
    /// `put` of `NAMES[name]` with `size` bytes; `seed` picks the content.
    Put {
        session: usize,
        name: usize,
        size: u64,
        seed: u8,
    },
    /// Some data of the session's upload.
    Write {
        session: usize,
        len: u64,
    },
    /// `put_end`, with the right MD5 or a wrong one.
    Finish {
        session: usize,
        right_md5: bool,
    },
    /// The connection drops.
    Abort {
        session: usize,
    },
    Remove {
        name: usize,
    },
    /// `rm` of a name whose partial upload is interrupted (no session is uploading it: the
    /// service holds the path's upload lock for this), or the partial expiring.
    RemovePartial {
        name: usize,
    },
    Move {
        from: usize,
        to: usize,
    },
    Mkdir {
        name: usize,
    },
    Rmdir {
        name: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let session = 0..SESSIONS;
    let name = 0..NAMES.len();
    prop_oneof![
        3 => (session.clone(), name.clone(), 0u64..400, 0u8..3)
            .prop_map(|(session, name, size, seed)| Step::Put { session, name, size, seed }),
        3 => (session.clone(), 1u64..300).prop_map(|(session, len)| Step::Write { session, len }),
        2 => (session.clone(), prop::bool::weighted(0.9))
            .prop_map(|(session, right_md5)| Step::Finish { session, right_md5 }),
        1 => session.prop_map(|session| Step::Abort { session }),
        2 => name.clone().prop_map(|name| Step::Remove { name }),
        1 => name.clone().prop_map(|name| Step::RemovePartial { name }),
        1 => (name.clone(), name.clone()).prop_map(|(from, to)| Step::Move { from, to }),
        1 => name.clone().prop_map(|name| Step::Mkdir { name }),
        1 => name.prop_map(|name| Step::Rmdir { name }),
    ]
}

/// One session's upload between `put_ready` and its end.
struct Live {
    id: ReservationId,
    name: usize,
    partial: PartialUpload,
    hasher: Md5,
    data: Vec<u8>,
    reserved: u64,
    may_create: bool,
}

struct World {
    _root: tempfile::TempDir,
    home: LocalStore,
    ledger: Ledger,
    limit: u64,
    max_files: u64,
    sessions: Vec<Option<Live>>,
    states: ResumeStates,
    digests: DigestIndex,
}

fn vp(name: &str) -> VirtualPath {
    VirtualPath::resolve(&VirtualPath::root(), name, PathLimits::default()).unwrap()
}

fn content(size: u64, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

impl World {
    fn new(limit: u64, max_files: u64) -> World {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        let home = LocalStore::open(root.path()).unwrap();
        let mut ledger = Ledger::default();
        ledger.set_limits("u", limit, max_files);
        ledger.set_measured("u", 0, 1);
        World {
            _root: root,
            home,
            ledger,
            limit,
            max_files,
            sessions: (0..SESSIONS).map(|_| None).collect(),
            states: ResumeStates::default(),
            digests: DigestIndex::default(),
        }
    }

    /// Ends a session's upload unpublished, as a dropped lease settles it.
    fn drop_upload(&mut self, live: Live) {
        self.ledger.settle("u", live.id, live.partial.disk_change());
    }

    fn apply(&mut self, step: Step) {
        match step {
            Step::Put { session, name, size, seed } => {
                let busy = self.sessions[session].is_some();
                let in_use = self.sessions.iter().flatten().any(|live| live.name == name);
                if busy || in_use {
                    return; // the session is in its upload; the path is locked (307)
                }
                let id = self.ledger.open("u");
                let may_create = self.ledger.reserve_file("u", id).is_ok();
                let opened = PartialUpload::open(&self.home, &vp(NAMES[name]), size, &self.states, may_create);
                let Ok((partial, hasher)) = opened else {
                    self.ledger.settle("u", id, DiskChange::default());
                    return; // no room for the partial's entry, a directory's name, no parent
                };
                let data = content(size, seed);
                let mut live = Live { id, name, partial, hasher, data, reserved: 0, may_create };
                let need = upload_need(size, live.partial.offset());
                if self.ledger.reserve("u", id, need).is_err() {
                    live.partial.abandon(&self.home);
                    self.drop_upload(live);
                    return;
                }
                live.reserved = need;
                // The client compares the prefix and restarts the upload if it differs.
                let offset = live.partial.offset() as usize;
                let prefix: [u8; 16] = live.hasher.clone().finalize().into();
                if prefix != <[u8; 16]>::from(Md5::digest(&live.data[..offset])) {
                    live.partial.restart().unwrap();
                    live.hasher = Md5::new();
                    let need = upload_need(size, 0);
                    if self.ledger.reserve("u", id, need).is_err() {
                        self.drop_upload(live);
                        return;
                    }
                    live.reserved = need;
                }
                self.sessions[session] = Some(live);
            }
            Step::Write { session, len } => {
                let Some(live) = &mut self.sessions[session] else { return };
                let at = live.partial.offset() as usize;
                let end = (at + len as usize).min(live.data.len());
                live.partial.append(&live.data[at..end]).unwrap();
                live.hasher.update(&live.data[at..end]);
            }
            Step::Finish { session, right_md5 } => {
                let Some(live) = self.sessions[session].take() else { return };
                let mut sender = Md5::digest(&live.data);
                if !right_md5 {
                    sender[0] ^= 1;
                }
                let md5 = live.hasher.finalize().into();
                let change = match live.partial.publish(&self.home, md5, &sender, &self.digests) {
                    Ok(done) => done.change,
                    Err(failed) => failed.change,
                };
                self.ledger.settle("u", live.id, change);
            }
            Step::Abort { session } => {
                if let Some(live) = self.sessions[session].take() {
                    self.drop_upload(live);
                }
            }
            Step::Remove { name } => {
                if let Ok(removed) = self.home.remove_file(&vp(NAMES[name])) {
                    self.ledger.adjust("u", DiskChange { bytes: -(removed.freed as i64), files: -1 });
                }
            }
            Step::RemovePartial { name } => {
                if self.sessions.iter().flatten().any(|live| live.name == name) {
                    return; // the path's upload lock is held
                }
                let id = self.ledger.open("u");
                let change = match self.home.remove_partial(&vp(NAMES[name]), None) {
                    Ok(freed) => DiskChange { bytes: -(freed as i64), files: -1 },
                    Err(_) => DiskChange::default(),
                };
                self.ledger.settle("u", id, change);
            }
            Step::Move { from, to } => {
                // Refused only for a reason about the names (`d/c` may lack its directory).
                if let Err(refused) = self.home.rename(&vp(NAMES[from]), &vp(NAMES[to])) {
                    assert!(
                        matches!(
                            refused,
                            StorageError::NotFound | StorageError::AlreadyExists | StorageError::IsADirectory
                        ),
                        "mv {} {}: {refused:?}",
                        NAMES[from],
                        NAMES[to]
                    );
                }
            }
            Step::Mkdir { name } => {
                let id = self.ledger.open("u");
                let created = self.ledger.reserve_file("u", id).is_ok() && self.home.mkdir(&vp(NAMES[name])).is_ok();
                self.ledger.settle("u", id, DiskChange { bytes: 0, files: created as i64 });
            }
            Step::Rmdir { name } => {
                if self.home.remove_dir(&vp(NAMES[name])).is_ok() {
                    self.ledger.adjust("u", DiskChange { bytes: 0, files: -1 });
                }
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let on_disk = self.home.usage().unwrap();
        let usage = self.ledger.usage("u");
        let live = || self.sessions.iter().flatten().map(|live| live.partial.disk_change());
        let (bytes, files): (i64, i64) = live().fold((0, 0), |(b, f), c| (b + c.bytes, f + c.files));
        prop_assert_eq!(on_disk.bytes as i64, usage.used as i64 + bytes, "the byte figures tell the disk's truth");
        prop_assert_eq!(on_disk.files as i64, usage.files as i64 + files, "the entry figures tell the disk's truth");
        prop_assert!(usage.used + usage.reserved <= self.limit, "{:?} passes the limit", usage);
        prop_assert!(usage.files + usage.files_reserved <= self.max_files, "{:?} passes max_files", usage);
        prop_assert!(on_disk.bytes <= self.limit, "{} bytes on disk over a limit of {}", on_disk.bytes, self.limit);
        prop_assert!(on_disk.files <= self.max_files, "{} entries over a max of {}", on_disk.files, self.max_files);
        for live in self.sessions.iter().flatten() {
            let change = live.partial.disk_change();
            prop_assert!(change.bytes <= live.reserved as i64, "an upload wrote more than it reserved");
            prop_assert!(change.files <= live.may_create as i64, "an upload created an entry it did not reserve");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn quota_holds_under_any_interleaving(
        limit in 200u64..1200,
        max_files in 2u64..8,
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let mut world = World::new(limit, max_files);
        for step in steps {
            world.apply(step);
            world.check()?;
        }
        for session in 0..SESSIONS {
            world.apply(Step::Abort { session });
        }
        world.check()?;
        let usage = world.ledger.usage("u");
        prop_assert_eq!((usage.reserved, usage.files_reserved), (0, 0));
    }
}

/// Publishes over a file and removals of it, racing on two threads, free each file's bytes
/// once: whoever wins each race, the sums of what both reported equal what the disk holds.
#[test]
fn publishes_racing_removals_free_each_file_once() {
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
    let root = tempfile::tempdir().unwrap();
    let home = std::sync::Arc::new(LocalStore::open(root.path()).unwrap());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let freed = std::sync::Arc::new(AtomicI64::new(0));
    let remover = {
        let (home, stop, freed) = (home.clone(), stop.clone(), freed.clone());
        std::thread::spawn(move || {
            // Attempts spread over a publish's length, so that some land between its look at
            // the old file and its rename.
            let mut pause = 1u64;
            while !stop.load(Ordering::Relaxed) {
                pause = pause * 7 % 301;
                std::thread::sleep(std::time::Duration::from_micros(pause));
                if let Ok(removed) = home.remove_file(&vp("a")) {
                    freed.fetch_add(removed.freed as i64, Ordering::SeqCst);
                }
            }
        })
    };
    let (digests, states) = (DigestIndex::default(), ResumeStates::default());
    let mut added: i64 = 0;
    for round in 0..4000u64 {
        let data = content(100 + round % 900, 3);
        let md5: [u8; 16] = Md5::digest(&data).into();
        let (mut partial, _) = PartialUpload::open(&home, &vp("a"), data.len() as u64, &states, true).unwrap();
        partial.restart().unwrap();
        partial.append(&data).unwrap();
        let published = partial.publish(&home, md5, &md5, &digests).unwrap();
        added += published.change.bytes;
    }
    stop.store(true, Ordering::Relaxed);
    remover.join().unwrap();
    let on_disk = home.usage().unwrap().bytes as i64;
    assert_eq!(added - freed.load(Ordering::SeqCst), on_disk, "a file's bytes were freed twice or never");
}

//! The file service, driven directly with no socket: the real actors (QuotaActor, AuthActor,
//! disk pool) and the operations every front end calls, over the local store (real files) and
//! over a store in memory (a second implementation of the storage seam). Its rules hold
//! whatever the wire and the store: a path in use waits for the upload before it, and the quota
//! stays exact under any interleaving of uploads, removals and renames from several sessions.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::memory_store::MemoryStore;
use common::{disk_entries, random_bytes, tree_bytes};
use ftp_actor::integrity::{Digest, Md5};
use ftp_actor::net::{ErrorCode, WireError};
use ftp_actor::quota::Usage;
use ftp_actor::service::upload::SizedUpload;
use ftp_actor::service::{EntryChange, Upload, UserFiles, begin_fresh, open_sized, open_stream};
use ftp_actor::storage::{FileStore, LocalStore, PathLimits, StreamRequest, VirtualPath};
use proptest::prelude::*;

const USER: &str = "u";

/// A store the tests run the service over, and what the quota must count in it.
trait TestStore: FileStore + Sized {
    fn open(home: &std::path::Path) -> Self;
    /// Bytes and entries the quota counts (partial uploads included).
    fn counted(&self, home: &std::path::Path) -> (u64, u64);
}

impl TestStore for LocalStore {
    fn open(home: &std::path::Path) -> LocalStore {
        LocalStore::open(home).unwrap()
    }

    fn counted(&self, home: &std::path::Path) -> (u64, u64) {
        (tree_bytes(home), disk_entries(home))
    }
}

impl TestStore for MemoryStore {
    fn open(_: &std::path::Path) -> MemoryStore {
        MemoryStore::default()
    }

    fn counted(&self, _: &std::path::Path) -> (u64, u64) {
        self.usage()
    }
}

/// One user's files behind the real service, in the current actix system.
struct World<S: TestStore = LocalStore> {
    actors: common::Actors,
    files: Arc<UserFiles<S>>,
    home: PathBuf,
}

impl<S: TestStore> World<S> {
    async fn new(limit: u64, max_files: u64) -> World<S> {
        let actors = common::Actors::start(USER, limit, max_files);
        let home = actors.home.clone();
        let files = Arc::new(UserFiles::new(actors.services.clone(), USER.into(), S::open(&home), home.clone()));
        let world = World::<S> { actors, files, home };
        // The AuthActor tells the QuotaActor its users once it has read the store.
        world.wait_for_usage(|usage| usage.limit == limit).await;
        world
    }

    /// Bytes and entries the quota must count now.
    fn counted(&self) -> (u64, u64) {
        self.files.store().counted(&self.home)
    }

    /// Polls the usage until `settled` accepts it (see [`common::Actors::wait_for_usage`]).
    async fn wait_for_usage(&self, settled: impl Fn(&Usage) -> bool) -> Usage {
        self.actors.wait_for_usage(USER, settled).await
    }
}

fn vp(name: &str) -> VirtualPath {
    VirtualPath::resolve(&VirtualPath::root(), name, PathLimits::default()).unwrap()
}

fn run(test: impl Future<Output = ()>) {
    actix_rt::System::new().block_on(test);
}

#[test]
fn a_second_upload_of_a_path_waits_for_the_first_to_end() {
    run(async {
        let world = World::<LocalStore>::new(1 << 20, 100).await;
        let first = open_stream(world.files.clone(), vp("f"), "f".into(), StreamRequest::Fresh).await.unwrap();
        let (first, _) = first.write(b"first".to_vec()).await.unwrap();
        // The second opens while the first is live: it waits rather than failing.
        let second = actix_rt::spawn(open_stream(world.files.clone(), vp("f"), "f".into(), StreamRequest::Fresh));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!second.is_finished(), "the second upload did not wait for the first");
        first.publish_as_is(None).await.unwrap();
        let second = tokio::time::timeout(Duration::from_secs(4), second).await.unwrap().unwrap().unwrap();
        let (second, _) = second.write(b"second".to_vec()).await.unwrap();
        second.publish_as_is(None).await.unwrap();
        assert_eq!(std::fs::read(world.home.join("f")).unwrap(), b"second");
        let usage = world.wait_for_usage(|usage| usage.reserved == 0).await;
        assert_eq!((usage.used, usage.files), (6, 1));
    });
}

#[test]
fn a_path_held_past_the_patience_is_in_use() {
    run(async {
        let world = World::<LocalStore>::new(1 << 20, 100).await;
        let held = open_stream(world.files.clone(), vp("f"), "f".into(), StreamRequest::Fresh).await.unwrap();
        let error = match open_sized(world.files.clone(), vp("f"), "f".into(), 3).await {
            Ok(_) => panic!("a second upload of a path in use opened"),
            Err(error) => error,
        };
        assert_eq!(error.code, ErrorCode::InUse, "{error:?}");
        drop(held);
        let SizedUpload { upload, hasher, .. } = open_sized(world.files.clone(), vp("f"), "f".into(), 3).await.unwrap();
        let md5 = Md5::digest(b"abc").to_vec();
        let published = upload.publish_checked(Some(bytes::Bytes::from_static(b"abc")), hasher, md5).await.unwrap();
        assert_eq!(published.to_vec(), Md5::digest(b"abc").to_vec());
    });
}

#[test]
fn a_refused_upload_leaves_nothing_and_keeps_the_quota() {
    run(refused_upload_leaves_nothing::<LocalStore>());
    run(refused_upload_leaves_nothing::<MemoryStore>());
}

async fn refused_upload_leaves_nothing<S: TestStore>() {
    let world = World::<S>::new(100, 100).await;
    let upload = open_stream(world.files.clone(), vp("big"), "big".into(), StreamRequest::Fresh).await.unwrap();
    let error = match upload.write(vec![7; 101]).await {
        Ok(_) => panic!("101 bytes were written under a quota of 100"),
        Err(error) => error,
    };
    assert_eq!(error.code, ErrorCode::QuotaExceeded, "{error:?}");
    let usage = world.wait_for_usage(|usage| usage.reserved == 0 && usage.files_reserved == 0).await;
    assert_eq!((usage.used, usage.files), (0, 0));
    assert_eq!(world.counted(), (0, 0), "the refused upload left a partial");
    let refused = open_sized(world.files.clone(), vp("big"), "big".into(), 101).await.err().unwrap();
    assert_eq!(refused.code, ErrorCode::QuotaExceeded);
    assert_eq!(world.counted(), (0, 0));
}

/// A file stored whole replaces the partial an interrupted upload of its name left: where the
/// quota cannot hold both, the bytes the partial frees count, as on the longer path.
#[test]
fn a_whole_file_may_use_the_room_of_the_partial_it_replaces() {
    run(async {
        let world = World::<LocalStore>::new(LIMIT, MAX_FILES).await;
        let upload = open_stream(world.files.clone(), vp("a"), "a".into(), StreamRequest::Fresh).await.unwrap();
        let (upload, _) = upload.write(random_bytes(4000, 1)).await.unwrap();
        upload.abandon(None).await;
        let fresh = begin_fresh(world.files.clone(), vp("a"), "a".into()).await.unwrap();
        fresh.store_whole(random_bytes(3000, 2)).await.unwrap();
        assert_eq!(world.counted(), (3000, 1), "the file is stored and the partial gone");
        let usage = world.wait_for_usage(|usage| usage.reserved == 0).await;
        assert_eq!((usage.used, usage.files), (3000, 1));
        let fresh = begin_fresh(world.files.clone(), vp("b"), "b".into()).await.unwrap();
        assert!(fresh.store_whole(random_bytes(3001, 3)).await.is_err(), "3000 + 3001 is over the quota");
        assert_eq!(world.counted(), (3000, 1), "a refused file leaves nothing");
    });
}

/// One step of several sessions working on the same home, in the order proptest draws.
#[derive(Debug, Clone)]
enum Step {
    /// A session opens an upload: a stream (FTP's STOR or APPE) or one of announced size.
    Open {
        session: usize,
        name: usize,
        append: bool,
        sized: Option<u64>,
    },
    Write {
        session: usize,
        len: usize,
        seed: u64,
    },
    /// A fresh upload whose data all came at once (FTP's STOR of a small file): stored whole.
    StoreWhole {
        name: usize,
        len: usize,
        seed: u64,
    },
    Publish {
        session: usize,
    },
    /// The upload ends unpublished: abandoned cleanly, or dropped as a lost connection drops it.
    Abandon {
        session: usize,
        drop: bool,
    },
    Remove {
        name: usize,
    },
    Rename {
        from: usize,
        to: usize,
    },
    MakeDir {
        name: usize,
    },
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const SESSIONS: usize = 3;
const LIMIT: u64 = 6000;
const MAX_FILES: u64 = 5;

fn step() -> impl Strategy<Value = Step> {
    let session = 0..SESSIONS;
    let name = 0..NAMES.len();
    prop_oneof![
        3 => (session.clone(), name.clone(), any::<bool>(), proptest::option::of(0u64..4000))
            .prop_map(|(session, name, append, sized)| Step::Open { session, name, append, sized }),
        5 => (session.clone(), 0usize..2500, any::<u64>()).prop_map(|(session, len, seed)| Step::Write { session, len, seed }),
        2 => (name.clone(), 0usize..4000, any::<u64>()).prop_map(|(name, len, seed)| Step::StoreWhole { name, len, seed }),
        2 => session.clone().prop_map(|session| Step::Publish { session }),
        1 => (session, any::<bool>()).prop_map(|(session, drop)| Step::Abandon { session, drop }),
        1 => name.clone().prop_map(|name| Step::Remove { name }),
        1 => (name.clone(), name.clone()).prop_map(|(from, to)| Step::Rename { from, to }),
        1 => name.prop_map(|name| Step::MakeDir { name }),
    ]
}

/// A session's live upload, with the MD5 a sized upload's sender would send.
struct Live<S: FileStore> {
    name: usize,
    upload: Upload<S>,
    hasher: Option<Md5>,
}

async fn apply<S: TestStore>(world: &World<S>, sessions: &mut [Option<Live<S>>], step: Step) {
    let files = &world.files;
    match step {
        Step::Open { session, name, append, sized } => {
            // A session in an upload cannot start another; a name in use would only wait.
            if sessions[session].is_some() || sessions.iter().flatten().any(|live| live.name == name) {
                return;
            }
            let target = vp(NAMES[name]);
            let shown = NAMES[name].to_string();
            sessions[session] = match sized {
                Some(size) => told(open_sized(files.clone(), target, shown, size).await).map(|opened| Live {
                    name,
                    upload: opened.upload,
                    hasher: Some(opened.hasher),
                }),
                None => {
                    let request = if append { StreamRequest::Append } else { StreamRequest::Fresh };
                    told(open_stream(files.clone(), target, shown, request).await).map(|upload| Live {
                        name,
                        upload,
                        hasher: None,
                    })
                }
            };
        }
        Step::Write { session, len, seed } => {
            let Some(Live { name, upload, mut hasher }) = sessions[session].take() else { return };
            let room = upload.size().saturating_sub(upload.offset()).min(len as u64) as usize;
            let data = random_bytes(room, seed);
            if let Some(hasher) = &mut hasher {
                hasher.update(&data);
            }
            // A refusal or a failed write ends the upload (the partial stays for a resume).
            if let Some((upload, _)) = told(upload.write(data).await) {
                sessions[session] = Some(Live { name, upload, hasher });
            }
        }
        Step::StoreWhole { name, len, seed } => {
            // A name in use would only wait.
            if sessions.iter().flatten().any(|live| live.name == name) {
                return;
            }
            let (target, shown) = (vp(NAMES[name]), NAMES[name].to_string());
            if let Some(fresh) = told(begin_fresh(files.clone(), target, shown).await) {
                told(fresh.store_whole(random_bytes(len, seed)).await);
            }
        }
        Step::Publish { session } => {
            let Some(live) = sessions[session].take() else { return };
            let published = match live.hasher {
                Some(hasher) => {
                    let md5 = hasher.clone().finalize().to_vec();
                    live.upload.publish_checked(None, hasher, md5).await.map(|_| ())
                }
                None => live.upload.publish_as_is(None).await,
            };
            told(published);
        }
        Step::Abandon { session, drop } => {
            let Some(live) = sessions[session].take() else { return };
            if !drop {
                live.upload.abandon(live.hasher).await;
            }
        }
        Step::Remove { name } => {
            // Where no file is published, `rm` removes the partial upload, under the path's
            // upload lock: with an upload of the name open, it would only wait for it.
            let uploading = sessions.iter().flatten().any(|live| live.name == name);
            if uploading && files.store().stat(&vp(NAMES[name])).is_err() {
                return;
            }
            told(files.remove_file(vp(NAMES[name]), NAMES[name].into()).await);
        }
        Step::Rename { from, to } => {
            told(files.rename(vp(NAMES[from]), vp(NAMES[to]), NAMES[from].into()).await);
        }
        Step::MakeDir { name } => {
            told(files.change_entry(EntryChange::MakeDir, vp(NAMES[name]), NAMES[name].into()).await);
        }
    }
}

/// A step's result, its refusal (if any) checked to be one whose reason the user is told: a
/// storage failure or an internal error would be a fault of the service (neither store here
/// fails), and an interleaving must not pass over it unseen.
fn told<T>(result: Result<T, WireError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(refused) => {
            assert!(!matches!(refused.code, ErrorCode::StorageFailure | ErrorCode::Internal), "{refused:?}");
            None
        }
    }
}

/// Whatever several sessions do, in any order, the home never holds more than the quota
/// (partials included), nor more entries than `max_files`; and once every upload has ended, the
/// quota's figures are exactly what the store holds.
async fn quota_stays_exact<S: TestStore>(steps: Vec<Step>) {
    let world = World::<S>::new(LIMIT, MAX_FILES).await;
    let mut sessions: Vec<Option<Live<S>>> = (0..SESSIONS).map(|_| None).collect();
    for step in steps {
        apply(&world, &mut sessions, step.clone()).await;
        let (bytes, entries) = world.counted();
        assert!(bytes <= LIMIT, "after {step:?}: {bytes} bytes stored over the quota of {LIMIT}");
        assert!(entries <= MAX_FILES, "after {step:?}: {entries} entries over max_files {MAX_FILES}");
    }
    drop(sessions);
    let counted = world.counted();
    let usage = world.wait_for_usage(|usage| usage.reserved == 0 && usage.files_reserved == 0).await;
    assert_eq!((usage.used, usage.files), counted, "the ledger and the store disagree");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_quota_is_exact_under_any_interleaving(steps in proptest::collection::vec(step(), 1..40)) {
        run(quota_stays_exact::<LocalStore>(steps));
    }

    #[test]
    fn the_quota_is_exact_under_any_interleaving_over_a_store_in_memory(
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        run(quota_stays_exact::<MemoryStore>(steps));
    }
}

//! MD5 throughput on one 256 KiB chunk (the transfer chunk size): ours (`ftp_actor::integrity`,
//! what every transfer is verified with) next to the md-5 crate, 0.10 with its x86 assembly
//! and the portable 0.11 line. MD5 bounds every verified transfer, which is why the choice is
//! measured here; see docs/DEPENDENCIES.md.
//!
//! `cargo bench --bench md5`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const CHUNK: usize = 256 * 1024;

fn md5_implementations(c: &mut Criterion) {
    let chunk: Vec<u8> = (0..CHUNK).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut group = c.benchmark_group("md5 of a 256 KiB chunk");
    group.throughput(Throughput::Bytes(CHUNK as u64));
    group.bench_function("ftp-actor (shipped)", |b| {
        use ftp_actor::integrity::{Digest, Md5};
        b.iter(|| Md5::digest(black_box(&chunk)))
    });
    group.bench_function("md-5 0.10, asm", |b| {
        use md5::Digest;
        b.iter(|| md5::Md5::digest(black_box(&chunk)))
    });
    group.bench_function("md-5 0.11, portable", |b| {
        use md5_portable::Digest;
        b.iter(|| md5_portable::Md5::digest(black_box(&chunk)))
    });
    group.finish();
}

criterion_group!(benches, md5_implementations);
criterion_main!(benches);

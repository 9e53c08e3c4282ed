//! The tag stripper on hostile tarballs: it must not panic, what it does must not
//! depend on how the stream is cut into chunks (Glance's HTTP body comes in
//! chunks of any size), and its output, filtered again, must come out the same
//! (nothing is left for a second pass to strip). Each input is also tried with
//! the checksums of its headers made right, so that mutations reach past the
//! checksum check.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use nova_docker::image::tarfilter::{TagStripper, TarError};

/// Chunk sizes around the 512-byte block, cycled from a start given by the input.
const SIZES: [usize; 7] = [1, 7, 100, 511, 512, 513, 4096];

fn filter(data: &[u8], sizes: Option<usize>) -> (Vec<u8>, Result<(), TarError>) {
    let mut s = TagStripper::new();
    let mut out = Vec::new();
    let all = Bytes::copy_from_slice(data);
    let mut res = Ok(());
    match sizes {
        None => res = s.push(all, &mut out),
        Some(start) => {
            let mut at = 0;
            let mut i = start;
            while at < all.len() {
                let n = SIZES[i % SIZES.len()].min(all.len() - at);
                i += 1;
                if let Err(e) = s.push(all.slice(at..at + n), &mut out) {
                    res = Err(e);
                    break;
                }
                at += n;
            }
        }
    }
    if res.is_ok() {
        res = s.finish();
    }
    (out.concat(), res)
}

/// The input with the checksum of every header made right, headers found as
/// the ustar sizes place them (PAX sizes are not followed).
fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    let mut at = 0usize;
    // (`at` may be past the end by any amount: a header's size is the input's)
    while at.checked_add(512).is_some_and(|end| end <= d.len()) {
        let block = &mut d[at..at + 512];
        if block.iter().all(|b| *b == 0) {
            break;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = match tar::Header::from_byte_slice(block).entry_size() {
            Ok(s) => s,
            Err(_) => break,
        };
        let Some(next) = usize::try_from(size.div_ceil(512))
            .ok()
            .and_then(|n| n.checked_mul(512))
            .and_then(|n| n.checked_add(at + 512))
        else {
            break;
        };
        at = next;
    }
    d
}

fn check(data: &[u8]) {
    let (whole, res) = filter(data, None);
    let (chunked, res_chunked) = filter(data, Some(data.len()));
    assert_eq!(res, res_chunked, "the verdict depends on the chunking");
    if res.is_ok() {
        assert!(whole == chunked, "the output depends on the chunking");
        let (again, res_again) = filter(&whole, None);
        assert_eq!(res_again, Ok(()), "the filter refuses its own output");
        assert!(again == whole, "a second pass changes the output");
    } else {
        let _ = res.map_err(|e| e.to_string());
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let fixed = fix_checksums(data);
    if fixed != data {
        check(&fixed);
    }
});

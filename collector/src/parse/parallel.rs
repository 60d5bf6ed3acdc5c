//! Parsing a whole stream on every core, with the results handed back in input order.
//!
//! The offline commands (`vigie parse`, `vigie analyze`, archive backfill) read files far
//! faster than one core parses them. A reader thread cuts the input into chunks of whole
//! lines, workers parse each chunk into an accumulator, and the calling thread receives the
//! accumulators in input order — so the output is exactly what a single thread would give.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::ops::ControlFlow;

/// Bytes per chunk (then up to the end of its last line): large enough that channel traffic
/// is noise (a thousand lines), small enough that the buffers in flight stay a few MiB. Each
/// of those buffers (chunks, and the callers' output per chunk) is fresh memory the kernel
/// zeroes when first touched: with 1 MiB chunks that zeroing was 11 to 14 % of the CPU time
/// of `vigie parse` on a 500,000-line file.
const CHUNK_BYTES: usize = 1 << 18;

/// The largest chunk buffer handed back to the reader for reuse: a chunk's room with slack
/// for the end of its last line.
const SPARE_CAPACITY_MAX: usize = 2 * CHUNK_BYTES;

struct Chunk {
    seq: u64,
    first_line: u64,
    text: Vec<u8>,
}

/// Calls `fold(acc, line_number, line)` on a worker thread for each line of `reader`, one
/// fresh `A` per chunk of lines; then calls `consume(acc)` on the calling thread for each
/// chunk, in input order, until it returns `ControlFlow::Break` (the output is gone, say).
/// Returns the number of lines read. The fold parses as it needs: `vigie parse` writes
/// [`crate::parse::Parser::parse_to_ecs_json`]'s JSON, `vigie analyze` reads
/// [`crate::parse::Parser::parse_borrowed`]'s event; neither builds an owned
/// [`crate::Event`].
///
/// Lines are numbered from 1, read as bytes and decoded lossily (real logs carry stray
/// Latin-1 bytes); a trailing `\n` or `\r\n` is removed. Only an I/O error of `reader`
/// stops the run.
pub fn lines_in_order<A: Default + Send>(
    mut reader: impl BufRead + Send,
    fold: impl Fn(&mut A, u64, &str) + Sync,
    mut consume: impl FnMut(A) -> ControlFlow<()>,
) -> std::io::Result<u64> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<Chunk>(workers * 2);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<(u64, A)>(workers * 2);
    // Chunk buffers the workers are done with, back to the reader: a fresh buffer per
    // chunk had the allocator return its pages to the kernel and the kernel zero new ones
    // (5 to 9 % of `vigie parse` in profiles). Bounded, and a full channel drops the buffer, so the
    // buffers alive stay a few per worker whatever the input's size.
    let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<u8>>(workers * 2 + 2);
    std::thread::scope(|scope| {
        // The reader copies whole blocks and cuts them after their last newline (the rest
        // starts the next chunk): one SIMD scan per block, not a search and a copy per line,
        // so the one serial stage stays far faster than the workers.
        let reader = scope.spawn(move || -> std::io::Result<u64> {
            let mut next_line = 1;
            let mut carry = Vec::new();
            let mut eof = false;
            for seq in 0.. {
                let mut text = spare_rx.try_recv().unwrap_or_default();
                text.clear();
                text.reserve(CHUNK_BYTES + (1 << 16));
                text.extend_from_slice(&carry);
                carry.clear();
                let mut newline = memchr::memchr(b'\n', &text).is_some();
                while !eof && (text.len() < CHUNK_BYTES || !newline) {
                    let block = reader.fill_buf()?;
                    if block.is_empty() {
                        eof = true;
                        break;
                    }
                    // Up to the chunk's size; past it (a line longer than a chunk), up to the
                    // end of that line.
                    let take = match CHUNK_BYTES.checked_sub(text.len()).filter(|room| *room > 0) {
                        Some(room) => block.len().min(room),
                        None => memchr::memchr(b'\n', block).map_or(block.len(), |i| i + 1),
                    };
                    newline |= memchr::memchr(b'\n', &block[..take]).is_some();
                    text.extend_from_slice(&block[..take]);
                    reader.consume(take);
                }
                if text.is_empty() {
                    break;
                }
                if eof {
                    if !text.ends_with(b"\n") {
                        text.push(b'\n');
                    }
                } else if let Some(last) = memchr::memrchr(b'\n', &text) {
                    carry.extend_from_slice(&text[last + 1..]);
                    text.truncate(last + 1);
                }
                let lines = memchr::memchr_iter(b'\n', &text).count();
                let chunk = Chunk { seq, first_line: next_line, text };
                next_line += lines as u64;
                if chunk_tx.send(chunk).is_err() {
                    break;
                }
            }
            Ok(next_line - 1)
        });
        for _ in 0..workers {
            let chunk_rx = chunk_rx.clone();
            let done_tx = done_tx.clone();
            let spare_tx = spare_tx.clone();
            let fold = &fold;
            scope.spawn(move || {
                for chunk in chunk_rx {
                    let mut acc = A::default();
                    // One validation per chunk (the fast path of `str::from_utf8`); a chunk with
                    // an invalid byte is decoded lossily as a whole, which gives each line what
                    // decoding it alone would: a newline never belongs to a multi-byte sequence.
                    let text = match std::str::from_utf8(&chunk.text) {
                        Ok(text) => std::borrow::Cow::Borrowed(text),
                        Err(_) => String::from_utf8_lossy(&chunk.text),
                    };
                    // The reader ends every chunk with a newline, so every line has one.
                    let mut start = 0;
                    for (n, newline) in (chunk.first_line..).zip(memchr::memchr_iter(b'\n', text.as_bytes())) {
                        let line = &text[start..newline];
                        start = newline + 1;
                        let line = line.strip_suffix('\r').unwrap_or(line);
                        fold(&mut acc, n, line);
                    }
                    drop(text);
                    // Full (the reader is behind) or closed (it is done): the buffer is dropped.
                    // So is one grown for a line longer than a chunk, not kept for the run.
                    if chunk.text.capacity() <= SPARE_CAPACITY_MAX {
                        let _ = spare_tx.try_send(chunk.text);
                    }
                    if done_tx.send((chunk.seq, acc)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        drop(chunk_rx);
        drop(spare_tx);
        let mut next = 0;
        let mut waiting = BTreeMap::new();
        'receive: for (seq, acc) in &done_rx {
            waiting.insert(seq, acc);
            while let Some(acc) = waiting.remove(&next) {
                next += 1;
                if consume(acc).is_break() {
                    break 'receive;
                }
            }
        }
        // Dropping the receiver stops the workers, and with them the reader.
        drop(done_rx);
        reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Format, Parser, test_context};

    /// Each line with its number, its text and whether it parses, in the order consumed.
    fn run(text: &[u8]) -> (u64, Vec<(u64, String, bool)>) {
        let parser = Parser::new(&Format::ApacheCommon).unwrap();
        let ctx = test_context("UTC");
        let mut seen = Vec::new();
        let lines = lines_in_order(
            text,
            |acc: &mut Vec<_>, n, line| acc.push((n, line.to_owned(), parser.parse_borrowed(line, &ctx).is_ok())),
            |acc| {
                seen.extend(acc);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        (lines, seen)
    }

    #[test]
    fn results_come_back_in_input_order_with_their_line_numbers() {
        let good = "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 1";
        // Enough lines for many chunks, with a bad line, a CRLF line and no final newline.
        let mut text = String::new();
        for i in 1..=20_000 {
            match i {
                7777 => text.push_str("not a log line\n"),
                9000 => text.push_str(&format!("{good}\r\n")),
                _ => text.push_str(&format!("{good}\n")),
            }
        }
        text.pop();
        let (lines, seen) = run(text.as_bytes());
        assert_eq!(lines, 20_000);
        assert_eq!(seen.len(), 20_000);
        for (i, (n, line, parsed)) in seen.iter().enumerate() {
            let n = *n;
            assert_eq!(n, i as u64 + 1);
            if n == 7777 {
                assert_eq!((line.as_str(), *parsed), ("not a log line", false));
            } else {
                assert_eq!((line.as_str(), *parsed), (good, true), "line {n}");
            }
        }
    }

    #[test]
    fn lines_cut_across_read_blocks_and_chunks_come_back_whole() {
        // A small read buffer cuts lines anywhere; 3 MiB of lines of every length from 0 to
        // 300 bytes make several chunks, with CRLF lines and no final newline.
        let mut text = Vec::new();
        let mut expected = Vec::new();
        let mut i = 0usize;
        while text.len() < 3 << 20 {
            let line: String = (0..i % 301).map(|k| char::from(b'a' + ((i + k) % 26) as u8)).collect();
            text.extend_from_slice(line.as_bytes());
            text.extend_from_slice(if i.is_multiple_of(7) { b"\r\n" } else { b"\n" });
            expected.push(line);
            i += 1;
        }
        text.extend_from_slice(b"fin");
        expected.push("fin".into());
        let reader = std::io::BufReader::with_capacity(4093, text.as_slice());
        let mut seen = Vec::new();
        let mut chunks = 0;
        let lines = lines_in_order(
            reader,
            |acc: &mut Vec<(u64, String)>, n, line| acc.push((n, line.to_owned())),
            |acc| {
                chunks += 1;
                seen.extend(acc);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert!(chunks >= 3, "{chunks} chunks");
        assert_eq!(lines as usize, expected.len());
        assert_eq!(seen.len(), expected.len());
        for (k, ((n, line), want)) in seen.iter().zip(&expected).enumerate() {
            assert_eq!((*n, line.as_str()), (k as u64 + 1, want.as_str()));
        }
    }

    #[test]
    fn a_break_stops_the_run_early() {
        // 20 MB: far more chunks than the channels hold.
        let text = "x\n".repeat(10_000_000);
        let mut chunks = 0;
        let lines = lines_in_order(
            text.as_bytes(),
            |_: &mut (), _, _| {},
            |()| {
                chunks += 1;
                ControlFlow::Break(())
            },
        )
        .unwrap();
        assert_eq!(chunks, 1);
        assert!(lines < 10_000_000, "the reader went on to the end: {lines}");
    }

    #[test]
    fn empty_input_reads_no_line_and_stray_bytes_do_not_stop_the_run() {
        assert_eq!(run(b"").0, 0);
        let (lines, seen) = run(b"\xff\xfe\n\n");
        assert_eq!(lines, 2);
        assert_eq!(seen[0].1, "\u{fffd}\u{fffd}");
        assert_eq!(seen[1].1, "");
    }
}

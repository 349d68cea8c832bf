//! Fuzzes the HTTP/2 `:authority` shim (`store/src/serve/h2_authority.rs`) with arbitrary
//! client bytes, read through it in arbitrary chunk sizes. It must never panic or loop, must
//! pass anything that is not HTTP/2 through unchanged, and its output must not depend on how
//! the bytes were split into reads.

#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

#[path = "../../store/src/serve/h2_authority.rs"]
#[allow(dead_code)]
mod h2_authority;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A client that sends `data` at most `chunk` bytes per read.
struct Client<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Client<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.data.len().min(self.chunk).min(buf.remaining());
        let (now, rest) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

/// Everything the server side reads through the shim, `read_size` bytes at a time.
fn shim(data: &[u8], chunk: usize, read_size: usize) -> Vec<u8> {
    let mut fix = h2_authority::AuthorityFix::new(Client { data, chunk });
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut buf = vec![0u8; read_size];
    // Each read returns at least one byte or ends the stream; the output is bounded (a
    // rewritten block can grow, never past MAX_DECODED_BYTES per block), so this ends.
    for _ in 0..(16 * data.len() + 1024) {
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut fix).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() => return out,
            Poll::Ready(Ok(())) => out.extend_from_slice(rb.filled()),
            Poll::Ready(Err(e)) => panic!("in-memory read failed: {e}"),
            Poll::Pending => panic!("the shim waits although its input is always ready"),
        }
    }
    panic!("the shim did not reach the end of {} input bytes", data.len());
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, rest)) = input.split_first() else { return };
    // Half the inputs start with the preface, so the frame parser is what gets explored.
    let data: Vec<u8> =
        if split & 1 == 1 { PREFACE.iter().chain(rest).copied().collect() } else { rest.to_vec() };
    let chunk = usize::from(split >> 1).max(1);
    let whole = shim(&data, data.len().max(1), 64 * 1024);
    let split_up = shim(&data, chunk, usize::from(split % 7) + 1);
    assert_eq!(whole, split_up, "the output depends on how the input was split");
    let n = data.len().min(PREFACE.len());
    if data[..n] != PREFACE[..n] {
        assert_eq!(whole, data, "non-HTTP/2 bytes must pass through unchanged");
    }
});

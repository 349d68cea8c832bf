//! A connection shim that repairs the HTTP/2 `:authority` pseudo-header etcdctl 3.4 sends.
//!
//! etcdctl 3.4 dials its per-endpoint maintenance calls (`endpoint status`, `defrag`,
//! `move-leader`) with the endpoint URL as the gRPC target, so `:authority` is a full URL such
//! as `http://127.0.0.1:2379`. Go's gRPC server accepts that; the h2 crate resets the stream
//! with PROTOCOL_ERROR ("malformed authority") and has no option to relax the check. This
//! module sits between the accepted socket and hyper on the client port, and rewrites such an
//! `:authority` before h2 sees it: a leading `scheme://` and anything from the first `/`, `?` or
//! `#` are cut; a value that is still not a valid authority is dropped (it is optional).
//!
//! # What is parsed
//! Only the client→server bytes, and only on connections that open with the HTTP/2 preface:
//! anything else (HTTP/1.1 such as `curl /health`) passes through untouched, as do all
//! server→client bytes. On HTTP/2 connections frames are forwarded as they arrive, except that a
//! header block (HEADERS plus its CONTINUATIONs) is held until END_HEADERS, since the authority
//! may sit in any fragment. PADDED and PRIORITY flags are understood; rewritten blocks drop the
//! padding, keep the priority fields and are split into frames of at most 16 KiB, the minimum
//! SETTINGS_MAX_FRAME_SIZE every peer accepts.
//!
//! # HPACK invariant
//! Header blocks are compressed against a connection-wide dynamic table, so the shim decodes
//! every client block with its own decoder, which mirrors the client's encoder table exactly
//! (entries, evictions and size updates, capped at h2's SETTINGS_HEADER_TABLE_SIZE of 4096 that
//! hyper never changes). There are two phases per connection:
//! 1. *Mirroring*: until the first block that needs a fix, blocks are forwarded byte for byte,
//!    so the server's (h2's) table equals the client's table, which equals ours.
//! 2. *Re-encoding*: from the first block that needs a fix on, *every* block is re-encoded. The
//!    first re-encoded block opens with a dynamic table size update to 0, which empties the
//!    server's table, and re-encoded blocks only ever use static-table indices and literals
//!    without indexing (never-indexed literals stay never-indexed, as RFC 7541 §6.2.3 demands of
//!    intermediaries). So from then on the server's table is empty for good, whatever the
//!    client's table holds: nothing the server decodes depends on state we could get wrong.
//!    The client's own size updates are applied to our decoder only.
//!
//! Malformed input never panics. While mirroring, anything the shim cannot follow (framing
//! errors, HPACK errors, blocks over `MAX_BLOCK_BYTES`) is forwarded as is and the rest of the
//! connection passes through, so h2 sees exactly what the client sent and rejects it itself.
//! Once re-encoding, the server's table no longer matches what the client's bytes assume, so the
//! shim instead sends a header block h2 must reject (HPACK index 0), which ends the connection
//! with COMPRESSION_ERROR, and then passes the rest through.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::uri::Authority;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

// The listener is the only part that needs axum; `fuzz/` includes this file with
// `--cfg fuzzing` and so builds without it (and without the oxcd crate and RocksDB).
#[cfg(not(fuzzing))]
pub use listener::FixingListener;

/// The client connection preface that starts every HTTP/2 connection (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_PUSH_PROMISE: u8 = 0x5;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// Largest frame payload the shim emits: the smallest SETTINGS_MAX_FRAME_SIZE allowed.
const OUT_MAX_FRAME: usize = 16 * 1024;
/// Largest header block (its frames, headers included) held in memory. hyper limits decoded
/// header lists to 16 KiB, so a larger block is hostile; it is passed through for h2 to judge.
const MAX_BLOCK_BYTES: usize = 256 * 1024;
/// Largest decoded header list (RFC 7541 sizes: name + value + 32 per field); bounds what
/// indexed references can expand to when a block is re-encoded as literals.
const MAX_DECODED_BYTES: usize = 1024 * 1024;
/// The server's SETTINGS_HEADER_TABLE_SIZE: h2's default, which hyper never changes, so it is
/// the largest dynamic table size update h2 accepts.
const HEADER_TABLE_SIZE: usize = 4096;
/// Bytes read from the socket at a time while frames are parsed.
const READ_CHUNK: usize = 8 * 1024;

/// A socket whose client→server HTTP/2 header blocks get a valid `:authority`.
///
/// Writes go straight to the inner stream; reads are parsed as described in the module docs.
pub struct AuthorityFix<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from `inner` and not yet processed.
    input: BytesMut,
    /// Processed bytes waiting for the reader. Reading from `inner` pauses until it drains.
    output: BytesMut,
    /// Payload bytes of a non-header frame still to forward as they come.
    skip: usize,
    /// A header block waiting for its END_HEADERS.
    block: Option<Block>,
    decoder: Decoder,
    /// Whether the connection is in the re-encoding phase (see the module docs).
    reencoding: bool,
    eof: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting to see whether the connection starts with the HTTP/2 preface.
    Detect,
    /// Parsing HTTP/2 frames.
    Frames,
    /// Forwarding everything untouched (HTTP/1, or HTTP/2 the shim gave up on).
    Raw,
}

/// A header block being collected: the HEADERS frame and its CONTINUATIONs.
struct Block {
    stream_id: u32,
    /// END_STREAM and PRIORITY bits of the HEADERS frame.
    flags: u8,
    priority: Option<[u8; 5]>,
    /// The HPACK bytes, without padding or priority fields.
    fragment: BytesMut,
    /// The frames exactly as received, for forwarding unchanged.
    raw: BytesMut,
}

impl<S> AuthorityFix<S> {
    /// Wraps a freshly accepted connection: nothing may have been read from it yet.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            mode: Mode::Detect,
            input: BytesMut::new(),
            output: BytesMut::new(),
            skip: 0,
            block: None,
            decoder: Decoder::new(),
            reencoding: false,
            eof: false,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves as much of `input` to `output` as can be decided now.
    fn process(&mut self) {
        loop {
            match self.mode {
                Mode::Raw => {
                    self.output.extend_from_slice(&self.input);
                    self.input.clear();
                    return;
                }
                Mode::Detect => {
                    let n = self.input.len().min(PREFACE.len());
                    if self.input[..n] != PREFACE[..n] {
                        self.mode = Mode::Raw;
                    } else if n == PREFACE.len() {
                        self.output.extend_from_slice(&self.input.split_to(n));
                        self.mode = Mode::Frames;
                    } else {
                        return;
                    }
                }
                Mode::Frames => {
                    if !self.next_frame() {
                        return;
                    }
                }
            }
        }
    }

    /// Handles the frame (or part of a pass-through frame) at the head of `input`. Returns
    /// false when more input is needed.
    fn next_frame(&mut self) -> bool {
        if self.skip > 0 {
            let n = self.skip.min(self.input.len());
            if n == 0 {
                return false;
            }
            self.output.extend_from_slice(&self.input[..n]);
            self.input.advance(n);
            self.skip -= n;
            return true;
        }
        let Some(head) = self.input.get(..FRAME_HEADER_LEN) else {
            return false;
        };
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (ty, flags) = (head[3], head[4]);
        let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;

        if let Some(block) = &self.block {
            if ty != TYPE_CONTINUATION || stream_id != block.stream_id {
                self.give_up("header block interrupted by another frame");
                return true;
            }
        }
        match ty {
            TYPE_HEADERS | TYPE_CONTINUATION => {}
            TYPE_PUSH_PROMISE => {
                // Clients must not push; its header block would also touch the HPACK table.
                self.give_up("PUSH_PROMISE from a client");
                return true;
            }
            _ => {
                self.output.extend_from_slice(&self.input[..FRAME_HEADER_LEN]);
                self.input.advance(FRAME_HEADER_LEN);
                self.skip = len;
                return true;
            }
        }
        if ty == TYPE_CONTINUATION && self.block.is_none() {
            self.give_up("CONTINUATION without HEADERS");
            return true;
        }
        let held = self.block.as_ref().map_or(0, |b| b.raw.len());
        if held + FRAME_HEADER_LEN + len > MAX_BLOCK_BYTES {
            self.give_up("header block too large");
            return true;
        }
        if self.input.len() < FRAME_HEADER_LEN + len {
            return false;
        }
        let payload = &self.input[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
        if ty == TYPE_HEADERS {
            let Some((priority, range)) = headers_fragment(flags, payload) else {
                self.give_up("bad HEADERS padding or priority");
                return true;
            };
            let fragment = BytesMut::from(&payload[range]);
            self.block = Some(Block {
                stream_id,
                flags: flags & (FLAG_END_STREAM | FLAG_PRIORITY),
                priority,
                fragment,
                raw: BytesMut::new(),
            });
        } else if let Some(block) = &mut self.block {
            block.fragment.extend_from_slice(payload);
        }
        let frame = self.input.split_to(FRAME_HEADER_LEN + len);
        if let Some(block) = &mut self.block {
            block.raw.extend_from_slice(&frame);
        }
        if flags & FLAG_END_HEADERS != 0 {
            self.finish_block();
        }
        true
    }

    /// Decodes the complete block and forwards it, as received or re-encoded.
    fn finish_block(&mut self) {
        let Some(block) = self.block.take() else {
            return;
        };
        let fields = match self.decoder.decode(&block.fragment) {
            Ok(fields) => fields,
            Err(Malformed(reason)) => {
                self.block = Some(block);
                self.give_up(reason);
                return;
            }
        };
        let broken = fields.iter().find(|f| f.name == ":authority" && !authority_ok(&f.value));
        if !self.reencoding && broken.is_none() {
            self.output.extend_from_slice(&block.raw);
            return;
        }
        if let Some(field) = broken {
            tracing::debug!(
                authority = %String::from_utf8_lossy(&field.value),
                stream_id = block.stream_id,
                "rewriting a malformed HTTP/2 :authority"
            );
        }
        let empty_server_table = !self.reencoding;
        self.reencoding = true;
        let mut hpack = Vec::with_capacity(block.fragment.len() * 2);
        encode_block(fields.into_iter().filter_map(repair), empty_server_table, &mut hpack);
        write_header_frames(&mut self.output, &block, &hpack);
    }

    /// Stops parsing: forwards what is held and passes the rest of the connection through.
    fn give_up(&mut self, reason: &'static str) {
        tracing::debug!(reason, "HTTP/2 authority fix: passing the rest of the connection through");
        let block = self.block.take();
        if self.reencoding {
            // The client's bytes assume a server table we emptied: send a block h2 must refuse
            // (index 0 is invalid in HPACK), so the connection ends with COMPRESSION_ERROR.
            let stream_id = block.map_or(1, |b| b.stream_id).max(1);
            write_frame_header(&mut self.output, 1, TYPE_HEADERS, FLAG_END_HEADERS, stream_id);
            self.output.extend_from_slice(&[0x80]);
        } else if let Some(block) = block {
            self.output.extend_from_slice(&block.raw);
        }
        self.skip = 0;
        self.mode = Mode::Raw;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                // Forward a truncated frame or block as is: h2 reports the early end itself.
                if let Some(block) = this.block.take() {
                    this.output.extend_from_slice(&block.raw);
                }
                this.mode = Mode::Raw;
                this.process();
                if this.output.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.mode == Mode::Raw && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut chunk = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk))?;
            if chunk.filled().is_empty() {
                this.eof = true;
            } else {
                this.input.extend_from_slice(chunk.filled());
                this.process();
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    /// Reported false whatever the socket can do, for h2's sake: with vectored writes h2
    /// keeps every DATA payload over 256 bytes out of its write buffer and writes it on its
    /// own, so each gRPC answer of a typical size (a 256-byte value and its key, header and
    /// revisions) cost a `writev` of its own — 1.7 per request with 100 clients on 10
    /// connections, a quarter of the member's CPU in loopback sends. Without, payloads up to
    /// 1 KiB are copied into h2's buffer and a connection's answers leave together (etcd's
    /// Go server writes ~8 answers per `write` in the same workload).
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(not(fuzzing))]
mod listener {
    use std::io;
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream};

    use super::AuthorityFix;

    /// Pause after an accept error that is not about one connection (e.g. out of descriptors).
    const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

    /// A TCP listener for `axum::serve` whose connections are wrapped in [`AuthorityFix`].
    pub struct FixingListener(TcpListener);

    impl FixingListener {
        /// Wraps a bound listener.
        pub fn new(listener: TcpListener) -> Self {
            Self(listener)
        }
    }

    impl axum::serve::Listener for FixingListener {
        type Io = AuthorityFix<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                match self.0.accept().await {
                    Ok((stream, addr)) => {
                        // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold small
                        // gRPC frames back for ~40 ms whenever a connection multiplexes clients.
                        if let Err(e) = stream.set_nodelay(true) {
                            tracing::debug!(error = %e, "setting TCP_NODELAY on a client connection");
                        }
                        return (AuthorityFix::new(stream), addr);
                    }
                    // A connection that died before it was accepted concerns only that client.
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "accepting a client connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
        }

        fn local_addr(&self) -> io::Result<SocketAddr> {
            self.0.local_addr()
        }
    }

    fn is_connection_error(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        )
    }
}

/// The priority fields and the HPACK fragment's range within a HEADERS payload, or `None` when
/// the padding or priority fields do not fit (a PROTOCOL_ERROR for h2 to report).
fn headers_fragment(
    flags: u8,
    payload: &[u8],
) -> Option<(Option<[u8; 5]>, std::ops::Range<usize>)> {
    let mut start = 0;
    let mut end = payload.len();
    if flags & FLAG_PADDED != 0 {
        let pad = usize::from(*payload.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let fields: [u8; 5] = payload.get(start..start + 5)?.try_into().ok()?;
        priority = Some(fields);
        start += 5;
    }
    (start <= end).then_some((priority, start..end))
}

fn write_frame_header(out: &mut BytesMut, len: usize, ty: u8, flags: u8, stream_id: u32) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[ty, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

/// Writes `hpack` as HEADERS (with the block's END_STREAM and priority) plus CONTINUATIONs.
fn write_header_frames(out: &mut BytesMut, block: &Block, hpack: &[u8]) {
    let priority: &[u8] = block.priority.as_ref().map_or(&[], |p| &p[..]);
    let (first, mut rest) = hpack.split_at(hpack.len().min(OUT_MAX_FRAME - priority.len()));
    let mut flags = block.flags;
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    write_frame_header(out, priority.len() + first.len(), TYPE_HEADERS, flags, block.stream_id);
    out.extend_from_slice(priority);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(OUT_MAX_FRAME));
        rest = tail;
        let flags = if rest.is_empty() { FLAG_END_HEADERS } else { 0 };
        write_frame_header(out, chunk.len(), TYPE_CONTINUATION, flags, block.stream_id);
        out.extend_from_slice(chunk);
    }
}

/// Whether h2 accepts `value` as `:authority` (it parses it with `http::uri::Authority`).
fn authority_ok(value: &[u8]) -> bool {
    Authority::try_from(value).is_ok()
}

/// The field with a malformed `:authority` repaired, or `None` when it cannot be.
fn repair(mut field: Field) -> Option<Field> {
    if field.name != ":authority" || authority_ok(&field.value) {
        return Some(field);
    }
    let mut value = &field.value[..];
    if let Some(at) = value.windows(3).position(|w| w == b"://") {
        value = &value[at + 3..];
    }
    if let Some(end) = value.iter().position(|b| matches!(b, b'/' | b'?' | b'#')) {
        value = &value[..end];
    }
    if !authority_ok(value) {
        return None;
    }
    field.value = field.value.slice_ref(value);
    Some(field)
}

/// A decoding failure, with a reason for the debug log.
#[derive(Debug)]
struct Malformed(&'static str);

/// One decoded header field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: Bytes,
    value: Bytes,
    /// Sent as "literal never indexed": must be forwarded the same way.
    never_indexed: bool,
}

/// An HPACK decoder (RFC 7541) that mirrors the client encoder's dynamic table.
struct Decoder {
    /// Newest first, as HPACK indexes them (index 62 is the front).
    entries: VecDeque<(Bytes, Bytes)>,
    size: usize,
    max_size: usize,
}

impl Decoder {
    fn new() -> Self {
        Self { entries: VecDeque::new(), size: 0, max_size: HEADER_TABLE_SIZE }
    }

    fn decode(&mut self, src: &[u8]) -> Result<Vec<Field>, Malformed> {
        let mut fields = Vec::new();
        let mut list_size = 0usize;
        let mut pos = 0;
        while let Some(&first) = src.get(pos) {
            let field = if first & 0x80 != 0 {
                let index = decode_int(src, &mut pos, 7)?;
                let (name, value) = self.get(index)?;
                Field { name, value, never_indexed: false }
            } else if first & 0x40 != 0 {
                let (name, value) = self.literal(src, &mut pos, 6)?;
                self.insert(name.clone(), value.clone());
                Field { name, value, never_indexed: false }
            } else if first & 0x20 != 0 {
                if !fields.is_empty() {
                    return Err(Malformed("dynamic table size update after a header field"));
                }
                let size = decode_int(src, &mut pos, 5)?;
                if size > HEADER_TABLE_SIZE {
                    return Err(Malformed("dynamic table size update above the setting"));
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                let (name, value) = self.literal(src, &mut pos, 4)?;
                Field { name, value, never_indexed: first & 0x10 != 0 }
            };
            list_size += field.name.len() + field.value.len() + 32;
            if list_size > MAX_DECODED_BYTES {
                return Err(Malformed("decoded header list too large"));
            }
            fields.push(field);
        }
        Ok(fields)
    }

    /// A literal field: an indexed or literal name, then a literal value.
    fn literal(
        &self,
        src: &[u8],
        pos: &mut usize,
        prefix: u8,
    ) -> Result<(Bytes, Bytes), Malformed> {
        let index = decode_int(src, pos, prefix)?;
        let name = if index == 0 { decode_string(src, pos)? } else { self.get(index)?.0 };
        Ok((name, decode_string(src, pos)?))
    }

    fn get(&self, index: usize) -> Result<(Bytes, Bytes), Malformed> {
        match index {
            0 => Err(Malformed("HPACK index 0")),
            1..=STATIC_LEN => {
                let (name, value) = STATIC_TABLE[index - 1];
                Ok((Bytes::from_static(name.as_bytes()), Bytes::from_static(value.as_bytes())))
            }
            _ => self
                .entries
                .get(index - STATIC_LEN - 1)
                .cloned()
                .ok_or(Malformed("HPACK index beyond the dynamic table")),
        }
    }

    fn insert(&mut self, name: Bytes, value: Bytes) {
        let size = name.len() + value.len() + 32;
        if size > self.max_size {
            // RFC 7541 §4.4: an entry larger than the table empties it and is not added.
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.entries.push_front((name, value));
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max_size {
            let Some((name, value)) = self.entries.pop_back() else {
                self.size = 0;
                return;
            };
            self.size -= name.len() + value.len() + 32;
        }
    }
}

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1), at most 2^28 or so.
fn decode_int(src: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, Malformed> {
    const TRUNCATED: Malformed = Malformed("truncated HPACK integer");
    let mask = (1usize << prefix) - 1;
    let first = usize::from(*src.get(*pos).ok_or(TRUNCATED)?) & mask;
    *pos += 1;
    if first < mask {
        return Ok(first);
    }
    let mut value = mask;
    for shift in [0, 7, 14, 21] {
        let byte = *src.get(*pos).ok_or(TRUNCATED)?;
        *pos += 1;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed("HPACK integer too large"))
}

/// An HPACK string literal (RFC 7541 §5.2), Huffman-coded or not.
fn decode_string(src: &[u8], pos: &mut usize) -> Result<Bytes, Malformed> {
    let huffman = src.get(*pos).is_some_and(|b| b & 0x80 != 0);
    let len = decode_int(src, pos, 7)?;
    let bytes = pos
        .checked_add(len)
        .and_then(|end| src.get(*pos..end))
        .ok_or(Malformed("truncated HPACK string"))?;
    *pos += len;
    if huffman {
        huffman_decode(bytes).map(Bytes::from)
    } else {
        Ok(Bytes::copy_from_slice(bytes))
    }
}

fn encode_int(value: usize, prefix: u8, flags: u8, out: &mut Vec<u8>) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

fn encode_string(value: &[u8], out: &mut Vec<u8>) {
    encode_int(value.len(), 7, 0, out);
    out.extend_from_slice(value);
}

/// Encodes `fields` without touching the decoder's dynamic table: static indices and literals
/// without indexing only. `empty_table` first shrinks the table to 0 (see the module docs).
fn encode_block(fields: impl Iterator<Item = Field>, empty_table: bool, out: &mut Vec<u8>) {
    if empty_table {
        encode_int(0, 5, 0x20, out);
    }
    for field in fields {
        let mut name_index = 0;
        let mut full_index = None;
        for (i, (name, value)) in STATIC_TABLE.iter().enumerate() {
            if field.name == name.as_bytes() {
                if name_index == 0 {
                    name_index = i + 1;
                }
                if field.value == value.as_bytes() {
                    full_index = Some(i + 1);
                    break;
                }
            }
        }
        match full_index {
            Some(index) if !field.never_indexed => encode_int(index, 7, 0x80, out),
            _ => {
                let flags = if field.never_indexed { 0x10 } else { 0x00 };
                encode_int(name_index, 4, flags, out);
                if name_index == 0 {
                    encode_string(&field.name, out);
                }
                encode_string(&field.value, out);
            }
        }
    }
}

const STATIC_LEN: usize = 61;

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); STATIC_LEN] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Code lengths of the HPACK Huffman code (RFC 7541 Appendix B), symbols 0..=255 then EOS.
/// The code is canonical (codes of one length are consecutive, in symbol order, and shorter
/// codes come first), so the lengths determine every code.
const HUFFMAN_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 0x20
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 0x30
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 0x40
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 0x50
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 0x60
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 0x70
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
    30, // EOS
];
const HUFFMAN_MAX_LEN: usize = 30;
const HUFFMAN_EOS: u16 = 256;

/// The canonical Huffman code in the form a bit-at-a-time decoder needs.
struct Canonical {
    /// Per length: the first (smallest) code of that length.
    first: [u32; HUFFMAN_MAX_LEN + 1],
    /// Per length: how many codes have it.
    count: [u32; HUFFMAN_MAX_LEN + 1],
    /// Per length: where its symbols start in `symbols`.
    offset: [usize; HUFFMAN_MAX_LEN + 1],
    /// Symbols ordered by (code length, symbol), i.e. by code.
    symbols: [u16; 257],
}

const HUFFMAN: Canonical = canonical();

const fn canonical() -> Canonical {
    let mut count = [0u32; HUFFMAN_MAX_LEN + 1];
    let mut s = 0;
    while s < 257 {
        count[HUFFMAN_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut first = [0u32; HUFFMAN_MAX_LEN + 1];
    let mut offset = [0usize; HUFFMAN_MAX_LEN + 1];
    let mut symbols = [0u16; 257];
    let (mut code, mut next, mut len) = (0u32, 0usize, 1);
    while len <= HUFFMAN_MAX_LEN {
        first[len] = code;
        offset[len] = next;
        code = (code + count[len]) << 1;
        let mut s = 0;
        while s < 257 {
            if HUFFMAN_LENGTHS[s] as usize == len {
                symbols[next] = s as u16;
                next += 1;
            }
            s += 1;
        }
        len += 1;
    }
    Canonical { first, count, offset, symbols }
}

/// Decodes a Huffman-coded HPACK string, enforcing RFC 7541 §5.2: no EOS symbol, and at most
/// 7 bits of padding, all ones.
fn huffman_decode(src: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(src.len() * 8 / 5 + 1);
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in src {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            let rank = code.wrapping_sub(HUFFMAN.first[len]);
            if code >= HUFFMAN.first[len] && rank < HUFFMAN.count[len] {
                let symbol = HUFFMAN.symbols[HUFFMAN.offset[len] + rank as usize];
                if symbol == HUFFMAN_EOS {
                    return Err(Malformed("EOS in a Huffman string"));
                }
                out.push(symbol as u8);
                (code, len) = (0, 0);
            } else if len == HUFFMAN_MAX_LEN {
                return Err(Malformed("invalid Huffman code"));
            }
        }
    }
    if len > 7 || code != (1 << len) - 1 {
        return Err(Malformed("invalid Huffman padding"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// The canonical code of every symbol, for the test encoder.
    fn huffman_codes() -> Vec<(u32, usize)> {
        let mut codes = vec![(0, 0); 257];
        for len in 1..=HUFFMAN_MAX_LEN {
            for rank in 0..HUFFMAN.count[len] {
                let symbol = HUFFMAN.symbols[HUFFMAN.offset[len] + rank as usize];
                codes[usize::from(symbol)] = (HUFFMAN.first[len] + rank, len);
            }
        }
        codes
    }

    fn huffman_encode(s: &[u8]) -> Vec<u8> {
        let codes = huffman_codes();
        let (mut acc, mut bits, mut out) = (0u64, 0usize, Vec::new());
        for &b in s {
            let (code, len) = codes[usize::from(b)];
            acc = acc << len | u64::from(code);
            bits += len;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push((acc << (8 - bits) | (0xff >> bits)) as u8);
        }
        out
    }

    fn lit(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_string(s.as_bytes(), &mut out);
        out
    }

    fn huff(s: &str) -> Vec<u8> {
        let coded = huffman_encode(s.as_bytes());
        let mut out = Vec::new();
        encode_int(coded.len(), 7, 0x80, &mut out);
        out.extend(coded);
        out
    }

    fn frame(ty: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_frame_header(&mut out, payload.len(), ty, flags, stream_id);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    fn headers(stream_id: u32, block: &[u8]) -> Vec<u8> {
        frame(TYPE_HEADERS, FLAG_END_HEADERS, stream_id, block)
    }

    type Header = (String, String, bool);

    fn h(name: &str, value: &str) -> Header {
        (name.to_string(), value.to_string(), false)
    }

    fn never(name: &str, value: &str) -> Header {
        (name.to_string(), value.to_string(), true)
    }

    fn decoded(decoder: &mut Decoder, block: &[u8]) -> Vec<Header> {
        let fields = decoder.decode(block).expect("block decodes");
        let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
        fields.iter().map(|f| (text(&f.name), text(&f.value), f.never_indexed)).collect()
    }

    /// Feeds `input` through the shim in `chunk`-sized writes and returns what hyper would read.
    async fn shim(input: &[u8], chunk: usize) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(4096);
        let input = input.to_vec();
        let writer = tokio::spawn(async move {
            for piece in input.chunks(chunk) {
                client.write_all(piece).await.unwrap();
            }
        });
        let mut out = Vec::new();
        AuthorityFix::new(server).read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    /// What the server side sees: the frames other than header frames, and each header block
    /// decoded against one server-side table. Also checks the frame layout the shim emits.
    fn server_view(out: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<Header>>, Decoder) {
        assert_eq!(&out[..24], PREFACE);
        let mut rest = &out[24..];
        let mut server = Decoder::new();
        let (mut others, mut blocks) = (Vec::new(), Vec::new());
        let mut block: Option<Vec<u8>> = None;
        while !rest.is_empty() {
            let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let (ty, flags) = (rest[3], rest[4]);
            let payload = &rest[9..9 + len];
            assert!(len <= OUT_MAX_FRAME, "frame of {len} bytes");
            match ty {
                TYPE_HEADERS => {
                    assert!(block.is_none());
                    let (_, range) = headers_fragment(flags, payload).unwrap();
                    block = Some(payload[range].to_vec());
                }
                TYPE_CONTINUATION => block.as_mut().unwrap().extend_from_slice(payload),
                _ => {
                    assert!(block.is_none());
                    others.push(rest[..9 + len].to_vec());
                }
            }
            if matches!(ty, TYPE_HEADERS | TYPE_CONTINUATION) && flags & FLAG_END_HEADERS != 0 {
                blocks.push(decoded(&mut server, &block.take().unwrap()));
            }
            rest = &rest[9 + len..];
        }
        assert!(block.is_none());
        (others, blocks, server)
    }

    #[test]
    fn huffman_matches_rfc() {
        // RFC 7541 C.4.1: "www.example.com".
        let coded = hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff");
        assert_eq!(huffman_decode(&coded).unwrap(), b"www.example.com");
        assert_eq!(huffman_encode(b"www.example.com"), coded);
        let codes = huffman_codes();
        assert_eq!(codes[usize::from(b'0')], (0x0, 5));
        assert_eq!(codes[usize::from(b' ')], (0x14, 6));
        assert_eq!(codes[0], (0x1ff8, 13));
        assert_eq!(codes[256], (0x3fff_ffff, 30));
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(huffman_decode(&huffman_encode(&all)).unwrap(), all);
        // Padding longer than 7 bits, padding with a zero bit, and EOS are errors.
        assert!(huffman_decode(&hex("1fff")).is_err());
        assert!(huffman_decode(&hex("fe")).is_err());
        assert!(huffman_decode(&hex("ffff fffc")).is_err());
    }

    #[test]
    fn decoder_follows_rfc_examples() {
        // RFC 7541 C.3 (plain) and C.4 (Huffman): three requests sharing one dynamic table.
        for blocks in [
            [
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            ],
            [
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            ],
        ] {
            let mut decoder = Decoder::new();
            let common = |scheme: &str, path: &str| {
                vec![h(":method", "GET"), h(":scheme", scheme), h(":path", path)]
            };
            let mut first = common("http", "/");
            first.push(h(":authority", "www.example.com"));
            assert_eq!(decoded(&mut decoder, &hex(blocks[0])), first);
            let mut second = first.clone();
            second.push(h("cache-control", "no-cache"));
            assert_eq!(decoded(&mut decoder, &hex(blocks[1])), second);
            let mut third = common("https", "/index.html");
            third.push(h(":authority", "www.example.com"));
            third.push(h("custom-key", "custom-value"));
            assert_eq!(decoded(&mut decoder, &hex(blocks[2])), third);
            assert_eq!(decoder.size, 164);
        }
    }

    #[tokio::test]
    async fn rewrites_url_authority() {
        let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
        block.push(0x44); // :path, incremental indexing
        block.extend(lit("/etcdserverpb.Maintenance/Status"));
        block.push(0x41); // :authority, incremental indexing, Huffman-coded
        block.extend(huff("http://127.0.0.1:2379"));
        block.push(0x5f); // content-type (static 31), incremental indexing
        block.extend(huff("application/grpc"));
        block.push(0x00); // a new name, without indexing
        block.extend(lit("te"));
        block.extend(lit("trailers"));
        block.extend([0x1f, 0x2b]); // user-agent (static 58), never indexed
        block.extend(lit("grpc-go/1.26.0"));
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        input.extend(headers(1, &block));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"\0\0\0\0\0"));

        for chunk in [1, 3, 4096] {
            let (others, blocks, _) = server_view(&shim(&input, chunk).await);
            assert_eq!(
                blocks,
                vec![vec![
                    h(":method", "POST"),
                    h(":scheme", "http"),
                    h(":path", "/etcdserverpb.Maintenance/Status"),
                    h(":authority", "127.0.0.1:2379"),
                    h("content-type", "application/grpc"),
                    h("te", "trailers"),
                    never("user-agent", "grpc-go/1.26.0"),
                ]]
            );
            assert_eq!(others, vec![frame(0x4, 0, 0, &[]), frame(0x0, 1, 1, b"\0\0\0\0\0")]);
        }
    }

    #[tokio::test]
    async fn follows_the_dynamic_table_across_requests() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0xff, 0xff])); // SETTINGS

        // Stream 1: a valid authority. Table afterwards (newest first): 62 te, 63 content-type,
        // 64 :authority 127.0.0.1:2379, 65 :path; 217 bytes.
        let mut a = vec![0x83, 0x86, 0x44];
        a.extend(lit("/etcdserverpb.KV/Range"));
        a.push(0x41);
        a.extend(huff("127.0.0.1:2379"));
        a.push(0x5f);
        a.extend(lit("application/grpc"));
        a.push(0x40);
        a.extend(lit("te"));
        a.extend(huff("trailers"));
        input.extend(headers(1, &a));
        input.extend(frame(0x0, FLAG_END_STREAM, 1, b"hello"));
        let mirrored = input.len();

        // Stream 3: a URL authority, inserted at 62 mid-block, so the later indices shift.
        let mut b = vec![0x83, 0x86, 0xc1, 0x41];
        b.extend(lit("http://127.0.0.1:2379"));
        b.extend([0xc0, 0xbf, 0x10]); // content-type, te, then a never-indexed new name
        b.extend(lit("x-secret"));
        b.extend(lit("s3cr3t"));
        input.extend(headers(3, &b));

        // Stream 5: shrink the table to 128 (keeps 62 bad :authority, 63 te), reuse both, then
        // insert an entry that evicts them; padded, with priority, over three frames.
        let mut c = vec![0x3f, 0x61, 0x82, 0x86, 0x04];
        c.extend(lit("/etcdserverpb.KV/Put"));
        c.extend([0xbe, 0xbf, 0x40]);
        c.extend(lit("x-big"));
        c.extend(lit(&"v".repeat(60)));
        c.push(0xbe);
        let mut first = vec![3]; // pad length
        first.extend([0x80, 0, 0, 1, 200]); // exclusive dependency on stream 1, weight 201
        first.extend(&c[..10]);
        first.extend([0, 0, 0]);
        let flags = FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM;
        input.extend(frame(TYPE_HEADERS, flags, 5, &first));
        input.extend(frame(TYPE_CONTINUATION, 0, 5, &c[10..20]));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 5, &c[20..]));
        input.extend(frame(0x6, 0, 0, b"12345678")); // PING

        // Stream 7: size updates to 0 and back, a never-indexed URL authority with a path, and a
        // header too big for one output frame, arriving as HEADERS + CONTINUATION.
        let mut d = vec![0x20, 0x3f, 0xe1, 0x1f, 0x82, 0x86, 0x84, 0x11];
        d.extend(huff("https://[::1]:2379/v3/kv/range?x=1"));
        d.push(0x00);
        d.extend(lit("x-large"));
        d.extend(lit(&"a".repeat(20_000)));
        input.extend(frame(TYPE_HEADERS, 0, 7, &d[..16_384]));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 7, &d[16_384..]));

        // Stream 9: an authority that stays invalid is dropped.
        let mut e = vec![0x82, 0x86, 0x84, 0x01];
        e.extend(lit("http://exa mple/"));
        input.extend(headers(9, &e));

        let expect_b = vec![
            h(":method", "POST"),
            h(":scheme", "http"),
            h(":path", "/etcdserverpb.KV/Range"),
            h(":authority", "127.0.0.1:2379"),
            h("content-type", "application/grpc"),
            h("te", "trailers"),
            never("x-secret", "s3cr3t"),
        ];
        let big = "v".repeat(60);
        let expect_c = vec![
            h(":method", "GET"),
            h(":scheme", "http"),
            h(":path", "/etcdserverpb.KV/Put"),
            h(":authority", "127.0.0.1:2379"),
            h("te", "trailers"),
            h("x-big", &big),
            h("x-big", &big),
        ];
        let large = "a".repeat(20_000);
        let expect_d = vec![
            h(":method", "GET"),
            h(":scheme", "http"),
            h(":path", "/"),
            never(":authority", "[::1]:2379"),
            h("x-large", &large),
        ];
        let expect_e = vec![h(":method", "GET"), h(":scheme", "http"), h(":path", "/")];

        for chunk in [1, 7, 100, 65_536] {
            let out = shim(&input, chunk).await;
            // Everything before the first fix is forwarded byte for byte.
            assert_eq!(out[..mirrored], input[..mirrored]);
            let (others, blocks, server) = server_view(&out);
            assert_eq!(blocks.len(), 5);
            assert_eq!(blocks[0][3], h(":authority", "127.0.0.1:2379"));
            assert_eq!(blocks[1], expect_b);
            assert_eq!(blocks[2], expect_c);
            assert_eq!(blocks[3], expect_d);
            assert_eq!(blocks[4], expect_e);
            assert_eq!(others.len(), 3);
            assert!(server.entries.is_empty() && server.max_size == 0);
            // The re-encoded HEADERS of stream 5 keeps END_STREAM and the priority fields.
            let at = out.windows(5).position(|w| w == [0x80, 0, 0, 1, 200]).unwrap();
            let head = &out[at - 9..at];
            assert_eq!((head[3], head[4]), (TYPE_HEADERS, FLAG_PRIORITY | FLAG_END_STREAM | 4));
        }
    }

    #[tokio::test]
    async fn http1_passes_through() {
        let requests: [&[u8]; 4] = [
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:2379\r\nUser-Agent: curl\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"PRI * HTTP/1.1\r\n\r\nthen some more bytes to make it longer",
            b"P",
        ];
        for request in requests {
            for chunk in [1, 5, 1024] {
                assert_eq!(shim(request, chunk).await, request);
            }
        }
    }

    #[tokio::test]
    async fn malformed_input_passes_through() {
        let settings = frame(0x4, 0, 0, &[]);
        let mut cases = Vec::new();
        // Padding longer than the payload.
        cases.push(frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_PADDED, 1, &[9, 0x82]));
        // An HPACK reference beyond the table.
        cases.push(headers(1, &[0x82, 0xff, 0x10]));
        // A HEADERS block interrupted by DATA, and a CONTINUATION without HEADERS.
        let mut interrupted = frame(TYPE_HEADERS, 0, 1, &[0x82]);
        interrupted.extend(frame(0x0, 0, 1, b"x"));
        cases.push(interrupted);
        cases.push(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &[0x82]));
        for case in cases {
            let mut input = PREFACE.to_vec();
            input.extend(&settings);
            input.extend(&case);
            input.extend(frame(0x6, 0, 0, b"12345678"));
            assert_eq!(shim(&input, 2).await, input);
        }
        // A frame cut short by the end of the connection.
        let mut input = PREFACE.to_vec();
        input.extend(&headers(1, &[0x82, 0x86, 0x84])[..10]);
        assert_eq!(shim(&input, 2).await, input);

        // Once re-encoding, an HPACK error becomes a block h2 refuses.
        let mut bad = vec![0x82, 0x86, 0x84, 0x01];
        bad.extend(lit("http://a/"));
        let mut input = PREFACE.to_vec();
        input.extend(headers(1, &bad));
        input.extend(headers(3, &[0x82, 0xff, 0x10]));
        let out = shim(&input, 4).await;
        assert!(out.ends_with(&headers(3, &[0x80])));

        // Arbitrary bytes after the preface never panic.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200 {
            let mut input = PREFACE.to_vec();
            for _ in 0..(seed % 300) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.push(match seed % 4 {
                    0 => 0,
                    1 => TYPE_HEADERS,
                    2 => TYPE_CONTINUATION,
                    _ => (seed >> 8) as u8,
                });
            }
            shim(&input, 13).await;
        }
    }

    /// Reads one frame: (type, flags, stream id, payload).
    async fn read_frame(stream: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).await.unwrap();
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0; len];
        stream.read_exact(&mut payload).await.unwrap();
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        (head[3], head[4], id, payload)
    }

    /// Sends a GET with a URL `:authority` to an axum server and returns the response status,
    /// or the RST_STREAM error code as `rst <code>`.
    async fn get_with_url_authority(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut block = vec![0x82, 0x86, 0x04];
        block.extend(lit("/x"));
        block.push(0x41);
        block.extend(huff(&format!("http://{addr}")));
        let mut request = PREFACE.to_vec();
        request.extend(frame(0x4, 0, 0, &[]));
        request.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &block));
        stream.write_all(&request).await.unwrap();
        // Decodes the server's blocks, Huffman and dynamic table included.
        let mut decoder = Decoder::new();
        loop {
            let (ty, _, id, payload) = read_frame(&mut stream).await;
            match ty {
                TYPE_HEADERS if id == 1 => {
                    let fields = decoded(&mut decoder, &payload);
                    return fields[0].1.clone();
                }
                0x3 => return format!("rst {}", payload[3]),
                0x7 => return "goaway".to_string(),
                _ => {}
            }
        }
    }

    #[tokio::test]
    async fn h2_serves_a_url_authority_through_the_shim() {
        let router = || axum::Router::new().route("/x", axum::routing::get(|| async { "ok" }));
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_addr = plain.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(plain, router()).await });
        let fixed = FixingListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let fixed_addr = axum::serve::Listener::local_addr(&fixed).unwrap();
        tokio::spawn(async move { axum::serve(fixed, router()).await });

        // Without the shim h2 refuses the stream with PROTOCOL_ERROR; with it, it is served.
        assert_eq!(get_with_url_authority(plain_addr).await, "rst 1");
        assert_eq!(get_with_url_authority(fixed_addr).await, "200");
    }
}

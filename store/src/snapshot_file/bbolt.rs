//! A reader of bbolt database files, the backend format of etcd and so of every snapshot file
//! (`etcdctl snapshot save`, a member's `member/snap/db`, oxcd's own snapshots).
//!
//! It reads pages on demand with positioned reads (never the whole file, never an mmap, so a
//! truncated file is an error rather than a SIGBUS) and walks each bucket's B+tree in key
//! order: branch pages, leaf pages, overflow pages and inline buckets. Everything in the file
//! is untrusted: every offset is bounds-checked, a page reachable twice or a cycle is an
//! error, and `check` verifies, as bbolt's `tx.Check` does, that every page below the
//! high-water mark is either reachable or free.
//!
//! Layout facts (bbolt's `page.go`/`db.go`): a page starts with {id u64, flags u16, count u16,
//! overflow u32}; leaf elements are {flags, pos, ksize, vsize: u32}, branch elements
//! {pos, ksize: u32, pgid u64}, each `pos` counted from its element; pages 0 and 1 are meta
//! pages {magic, version, page size, flags: u32, root {pgid, sequence: u64}, freelist,
//! high-water pgid, txid, checksum: u64}. Integers are little-endian (etcd's platforms).

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::SnapshotError;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;
const META_SIZE: usize = 64;
const META_CHECKSUMMED: usize = 56;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const FREELIST_PAGE: u16 = 0x10;
/// A leaf element whose value is a nested bucket's header.
const BUCKET_LEAF: u32 = 0x01;
/// The freelist pgid of a file written with `NoFreelistSync` (no freelist on disk).
const NO_FREELIST: u64 = u64::MAX;
/// Deeper trees than this are taken as a cycle or corruption (a 4 KiB-page tree of depth 64
/// would hold more keys than any file can).
const MAX_DEPTH: usize = 64;
/// Page sizes a meta page may record (bbolt uses the OS page size: 4 KiB to 64 KiB).
const PAGE_SIZES: [u64; 5] = [4096, 8192, 16384, 32768, 65536];

/// An open bbolt file, as of its newest valid meta page.
pub struct BoltFile {
    file: File,
    /// Bytes of the file that belong to the database (a snapshot's hash trailer excluded).
    len: u64,
    page_size: u64,
    /// The root bucket's root page.
    root: u64,
    freelist: u64,
    /// Pages in use: every page id is below it.
    high_water: u64,
    /// The transaction id of the meta page in use.
    txid: u64,
}

/// A top-level bucket: its name and where its tree is.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The bucket's name (its key in the root bucket).
    pub name: Vec<u8>,
    root: BucketRoot,
}

#[derive(Debug, Clone)]
enum BucketRoot {
    /// A bucket with pages of its own.
    Page(u64),
    /// A small bucket stored inside its parent's leaf: its only leaf page, unpadded.
    Inline(Vec<u8>),
}

/// One key of a bucket.
pub struct Item<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value; for a nested bucket, the bucket's header.
    pub value: &'a [u8],
    /// Whether this key holds a nested bucket rather than a value.
    pub is_bucket: bool,
}

/// Which pages a walk has seen: a page reached twice means a corrupt (or cyclic) tree.
pub struct Seen {
    bits: Vec<u64>,
}

impl Seen {
    fn new(pages: u64) -> Seen {
        Seen { bits: vec![0; (pages as usize).div_ceil(64)] }
    }

    /// Marks `id`; false if it was marked already.
    fn mark(&mut self, id: u64) -> bool {
        let (word, bit) = ((id / 64) as usize, id % 64);
        let was = self.bits[word] & (1 << bit) != 0;
        self.bits[word] |= 1 << bit;
        !was
    }

    fn contains(&self, id: u64) -> bool {
        self.bits[(id / 64) as usize] & (1 << (id % 64)) != 0
    }
}

impl BoltFile {
    /// Opens the database in the first `len` bytes of `file`, checking its meta pages.
    pub fn open(file: File, len: u64) -> Result<BoltFile, SnapshotError> {
        let meta0 = read_meta(&file, len, 0);
        // Meta 1 sits one page in; if meta 0 is unreadable its page size is unknown, so the
        // sizes bbolt may have used are tried.
        let page_size = match &meta0 {
            Ok(m) => Some(m.page_size),
            Err(_) => PAGE_SIZES
                .iter()
                .copied()
                .find(|&ps| read_meta(&file, len, ps).is_ok_and(|m| m.page_size == ps)),
        };
        let meta1 = match page_size {
            Some(ps) => read_meta(&file, len, ps),
            None => Err(SnapshotError::NotBolt("no valid meta page".into())),
        };
        // bbolt uses the valid meta page with the higher transaction id.
        let meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e), Err(_)) => return Err(e),
        };
        let Meta { page_size, root, freelist, high_water, txid } = meta;
        let needed = high_water.checked_mul(page_size).ok_or_else(|| corrupt("high-water mark"))?;
        if needed > len {
            return Err(SnapshotError::Truncated(format!(
                "the database ends at byte {needed} (page {high_water} of {page_size} bytes) \
                 but the file holds only {len} bytes of it"
            )));
        }
        if root < 2 || root >= high_water {
            return Err(corrupt(&format!("root page {root} outside pages 2..{high_water}")));
        }
        Ok(BoltFile { file, len, page_size, root, freelist, high_water, txid })
    }

    /// Bytes the database occupies (bbolt's `tx.Size()`): what `snapshot status` reports.
    pub fn size(&self) -> u64 {
        self.high_water * self.page_size
    }

    /// The page size the file was written with.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// The transaction id of the state read.
    pub fn txid(&self) -> u64 {
        self.txid
    }

    /// A fresh record of seen pages for one full walk (see `check`).
    pub fn seen(&self) -> Seen {
        Seen::new(self.high_water)
    }

    /// The top-level buckets, in name order. A top-level key that is not a bucket is an error
    /// (etcd keeps only buckets there).
    pub fn buckets(&self, seen: &mut Seen) -> Result<Vec<Bucket>, SnapshotError> {
        let mut out = Vec::new();
        self.walk(&Root::Page(self.root), seen, 0, &mut |item| {
            if !item.is_bucket {
                return Err(corrupt(&format!(
                    "top-level key {:?} is not a bucket",
                    String::from_utf8_lossy(item.key)
                )));
            }
            out.push(Bucket { name: item.key.to_vec(), root: bucket_root(item.value)? });
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with every key of `bucket`, in key order.
    pub fn for_each(
        &self,
        bucket: &Bucket,
        seen: &mut Seen,
        f: &mut dyn FnMut(Item<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        let root = match &bucket.root {
            BucketRoot::Page(id) => Root::Page(*id),
            BucketRoot::Inline(page) => Root::Inline(page),
        };
        self.walk(&root, seen, 0, f)
    }

    /// After every bucket was walked with `seen`: every page below the high-water mark must
    /// be reachable or free, never both, as bbolt's `tx.Check` requires. Files written
    /// without a freelist (`NoFreelistSync`) are checked for reachability only.
    pub fn check(&self, seen: &Seen) -> Result<(), SnapshotError> {
        if self.freelist == NO_FREELIST {
            return Ok(());
        }
        if self.freelist < 2 || self.freelist >= self.high_water {
            return Err(corrupt(&format!("freelist page {} out of range", self.freelist)));
        }
        let page = self.page(self.freelist)?;
        if page.flags != FREELIST_PAGE {
            return Err(corrupt(&format!("page {} is not a freelist page", self.freelist)));
        }
        let mut free = Seen::new(self.high_water);
        for p in self.freelist..=self.freelist + page.overflow {
            free.mark(p);
        }
        let (mut count, mut at) = (u64::from(page.count), PAGE_HEADER);
        if page.count == 0xFFFF {
            count = u64_at(&page.bytes, at)?;
            at += 8;
        }
        for i in 0..count {
            let id = u64_at(&page.bytes, at + (i as usize) * 8)?;
            if id < 2 || id >= self.high_water {
                return Err(corrupt(&format!("free page {id} out of range")));
            }
            if seen.contains(id) {
                return Err(corrupt(&format!("page {id}: reachable freed")));
            }
            free.mark(id);
        }
        for id in 2..self.high_water {
            if !seen.contains(id) && !free.contains(id) {
                return Err(corrupt(&format!("page {id}: unreachable unfreed")));
            }
        }
        Ok(())
    }

    /// Reads page `id` with its overflow pages, marking none of them.
    fn page(&self, id: u64) -> Result<Page, SnapshotError> {
        if id < 2 || id >= self.high_water {
            return Err(corrupt(&format!("page {id} outside pages 2..{}", self.high_water)));
        }
        let mut head = vec![0u8; self.page_size as usize];
        self.read_at(&mut head, id * self.page_size)?;
        let (stored, flags, count, overflow) = header(&head)?;
        if stored != id {
            return Err(corrupt(&format!("page {id} says it is page {stored}")));
        }
        let overflow = u64::from(overflow);
        if id + overflow >= self.high_water {
            return Err(corrupt(&format!("page {id} overflows past the high-water mark")));
        }
        let bytes = if overflow == 0 {
            head
        } else {
            let mut all = vec![0u8; ((overflow + 1) * self.page_size) as usize];
            all[..head.len()].copy_from_slice(&head);
            let rest = &mut all[head.len()..];
            self.read_at(rest, (id + 1) * self.page_size)?;
            all
        };
        Ok(Page { flags, count, overflow, bytes })
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> Result<(), SnapshotError> {
        if at + buf.len() as u64 > self.len {
            return Err(SnapshotError::Truncated(format!(
                "a page at byte {at} lies beyond the database's {} bytes",
                self.len
            )));
        }
        self.file.read_exact_at(buf, at).map_err(SnapshotError::Io)
    }

    fn walk(
        &self,
        root: &Root<'_>,
        seen: &mut Seen,
        depth: usize,
        f: &mut dyn FnMut(Item<'_>) -> Result<(), SnapshotError>,
    ) -> Result<(), SnapshotError> {
        if depth > MAX_DEPTH {
            return Err(corrupt("a bucket's tree is deeper than any real file's"));
        }
        let page;
        let (flags, count, bytes): (u16, u16, &[u8]) = match root {
            Root::Inline(bytes) => {
                let (_, flags, count, _) = header(bytes)?;
                (flags, count, bytes)
            }
            Root::Page(id) => {
                page = self.page(*id)?;
                for p in *id..=*id + page.overflow {
                    if !seen.mark(p) {
                        return Err(corrupt(&format!("page {p} is reachable twice")));
                    }
                }
                (page.flags, page.count, &page.bytes)
            }
        };
        match flags {
            LEAF_PAGE => {
                for i in 0..usize::from(count) {
                    let at = PAGE_HEADER + i * ELEMENT;
                    let flags = u32_at(bytes, at)?;
                    let pos = u32_at(bytes, at + 4)? as usize;
                    let ksize = u32_at(bytes, at + 8)? as usize;
                    let vsize = u32_at(bytes, at + 12)? as usize;
                    let key = slice(bytes, at + pos, ksize)?;
                    let value = slice(bytes, at + pos + ksize, vsize)?;
                    f(Item { key, value, is_bucket: flags & BUCKET_LEAF != 0 })?;
                }
                Ok(())
            }
            BRANCH_PAGE if matches!(root, Root::Page(_)) => {
                if count == 0 {
                    return Err(corrupt("an empty branch page"));
                }
                for i in 0..usize::from(count) {
                    let at = PAGE_HEADER + i * ELEMENT;
                    let child = u64_at(bytes, at + 8)?;
                    self.walk(&Root::Page(child), seen, depth + 1, f)?;
                }
                Ok(())
            }
            other => Err(corrupt(&format!(
                "{} has page type {other:#x} where a branch or leaf page belongs",
                match root {
                    Root::Page(id) => format!("page {id}"),
                    Root::Inline(_) => "an inline bucket".to_string(),
                }
            ))),
        }
    }
}

/// Where a walk starts.
enum Root<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

struct Page {
    flags: u16,
    count: u16,
    overflow: u64,
    bytes: Vec<u8>,
}

#[derive(Clone)]
struct Meta {
    page_size: u64,
    root: u64,
    freelist: u64,
    high_water: u64,
    txid: u64,
}

/// Reads and validates the meta page at byte `at`.
fn read_meta(file: &File, len: u64, at: u64) -> Result<Meta, SnapshotError> {
    let size = (PAGE_HEADER + META_SIZE) as u64;
    if at + size > len {
        return Err(if at == 0 && len == 0 {
            SnapshotError::NotBolt("the file is empty".into())
        } else {
            SnapshotError::Truncated(format!("no meta page at byte {at} in {len} bytes"))
        });
    }
    let mut buf = [0u8; PAGE_HEADER + META_SIZE];
    file.read_exact_at(&mut buf, at).map_err(SnapshotError::Io)?;
    let m = &buf[PAGE_HEADER..];
    if u32_at(m, 0)? != MAGIC {
        return Err(SnapshotError::NotBolt(format!("no bbolt magic number at byte {at}")));
    }
    if u32_at(m, 4)? != VERSION {
        return Err(SnapshotError::NotBolt(format!(
            "bbolt format version {} (expected {VERSION})",
            u32_at(m, 4)?
        )));
    }
    if u64_at(m, META_CHECKSUMMED)? != fnv64a(&m[..META_CHECKSUMMED]) {
        return Err(corrupt(&format!("the meta page at byte {at} fails its checksum")));
    }
    let page_size = u64::from(u32_at(m, 8)?);
    if !PAGE_SIZES.contains(&page_size) {
        return Err(corrupt(&format!("page size {page_size}")));
    }
    Ok(Meta {
        page_size,
        root: u64_at(m, 16)?,
        freelist: u64_at(m, 32)?,
        high_water: u64_at(m, 40)?,
        txid: u64_at(m, 48)?,
    })
}

/// A nested bucket's header: root page, or (root 0) the inline leaf page after the header.
fn bucket_root(value: &[u8]) -> Result<BucketRoot, SnapshotError> {
    let root = u64_at(value, 0)?;
    if root != 0 {
        return Ok(BucketRoot::Page(root));
    }
    let page = value.get(BUCKET_HEADER..).unwrap_or_default();
    if page.len() < PAGE_HEADER {
        return Err(corrupt("an inline bucket without its page"));
    }
    Ok(BucketRoot::Inline(page.to_vec()))
}

fn header(page: &[u8]) -> Result<(u64, u16, u16, u32), SnapshotError> {
    Ok((u64_at(page, 0)?, u16_at(page, 8)?, u16_at(page, 10)?, u32_at(page, 12)?))
}

fn slice(bytes: &[u8], at: usize, len: usize) -> Result<&[u8], SnapshotError> {
    at.checked_add(len)
        .and_then(|end| bytes.get(at..end))
        .ok_or_else(|| corrupt("an element points outside its page"))
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, SnapshotError> {
    Ok(u16::from_le_bytes(slice(b, at, 2)?.try_into().expect("2 bytes")))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, SnapshotError> {
    Ok(u32::from_le_bytes(slice(b, at, 4)?.try_into().expect("4 bytes")))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, SnapshotError> {
    Ok(u64::from_le_bytes(slice(b, at, 8)?.try_into().expect("8 bytes")))
}

fn corrupt(what: &str) -> SnapshotError {
    SnapshotError::Corrupt(what.to_string())
}

/// 64-bit FNV-1a, bbolt's meta checksum.
fn fnv64a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::snapshot_file::bbolt_writer::tests::{write, Buckets};

    fn file_of(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn read(bytes: &[u8]) -> Result<Buckets, SnapshotError> {
        let db = BoltFile::open(file_of(bytes), bytes.len() as u64)?;
        let mut seen = db.seen();
        let mut out = Buckets::new();
        for b in db.buckets(&mut seen)? {
            let mut items = Vec::new();
            db.for_each(&b, &mut seen, &mut |i| {
                items.push((i.key.to_vec(), i.value.to_vec()));
                Ok(())
            })?;
            out.insert(b.name.clone(), items);
        }
        db.check(&seen)?;
        Ok(out)
    }

    fn sample() -> Buckets {
        let many: Vec<_> = (0..5000u32)
            .map(|i| (format!("key-{i:06}").into_bytes(), vec![i as u8; (i % 300) as usize]))
            .collect();
        let big = vec![
            (b"a".to_vec(), vec![1u8; 300 * 1024]),
            (vec![b'k'; 6000], vec![2u8; 10]),
            (b"z".to_vec(), b"small".to_vec()),
        ];
        [
            (b"big".to_vec(), big),
            (b"empty".to_vec(), vec![]),
            (b"inline".to_vec(), vec![(b"x".to_vec(), b"1".to_vec())]),
            (b"many".to_vec(), many),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn reads_branches_overflow_and_inline_buckets() {
        let buckets = sample();
        assert_eq!(read(&write(&buckets)).unwrap(), buckets);
    }

    #[test]
    fn truncated_files_are_errors_not_panics() {
        let bytes = write(&sample());
        for cut in [0, 10, 4096, 8192, 8200, 12288, bytes.len() / 2, bytes.len() - 1] {
            let err = read(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(err, SnapshotError::Truncated(_) | SnapshotError::NotBolt(_)),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let bytes = write(&sample());
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut errors = 0;
        for _ in 0..300 {
            let mut copy = bytes.clone();
            // Damage page structures (headers and element arrays), where bbolt is fragile.
            let page = (next() % (copy.len() as u64 / 4096)) as usize;
            let at = page * 4096 + (next() % 96) as usize;
            copy[at] ^= 1 << (next() % 8);
            if read(&copy).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 0, "some damage must be detected");
    }

    #[test]
    fn a_page_referenced_twice_is_corrupt() {
        // Two buckets whose headers name the same root page.
        let buckets: Buckets = [
            (b"a".to_vec(), vec![(b"k".to_vec(), vec![0u8; 2000])]),
            (b"b".to_vec(), vec![(b"k".to_vec(), vec![0u8; 2000])]),
        ]
        .into_iter()
        .collect();
        let mut bytes = write(&buckets);
        // Pages: 0-1 meta, 2 freelist, 3 bucket a, 4 bucket b, 5 root leaf.
        let root = &mut bytes[5 * 4096..6 * 4096];
        let second_value = PAGE_HEADER + ELEMENT * 2 + 1 + 16 + 1;
        assert_eq!(u64::from_le_bytes(root[second_value..second_value + 8].try_into().unwrap()), 4);
        root[second_value..second_value + 8].copy_from_slice(&3u64.to_le_bytes());
        let err = read(&bytes).unwrap_err().to_string();
        assert!(err.contains("reachable twice"), "{err}");
    }

    #[test]
    fn newest_valid_meta_wins() {
        let bytes = write(&sample());
        // Damage meta 1 (txid 1): meta 0 is used.
        let mut copy = bytes.clone();
        copy[4096 + PAGE_HEADER + 20] ^= 0xff;
        assert_eq!(read(&copy).unwrap(), sample());
        // Damage meta 0: meta 1 is found at the page size.
        let mut copy = bytes.clone();
        copy[PAGE_HEADER + 20] ^= 0xff;
        assert_eq!(read(&copy).unwrap(), sample());
        // Both: not readable.
        copy[4096 + PAGE_HEADER + 20] ^= 0xff;
        assert!(read(&copy).is_err());
    }
}

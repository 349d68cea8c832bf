//! A writer of fresh bbolt database files: the file format of etcd's backend, and so of the
//! snapshot files etcd's tools read (`etcdutl snapshot status`, `etcdutl snapshot restore`).
//!
//! A file is written once, front to back, from top-level buckets given in byte order, each
//! with its keys in byte order. Nothing is updated in place, so no page is ever free:
//! - pages 0 and 1: the two meta pages, identical but for their transaction ids (0 and 1, as
//!   bbolt's own `init` writes them), written last because they name the root;
//! - page 2: an empty freelist;
//! - then every bucket's B+tree, leaves first and branch levels bottom-up, and last the tree
//!   of the root bucket, whose leaf values are the bucket headers `{root pgid, sequence}`
//!   (followed, for an inline bucket, by its leaf page).
//!
//! A bucket whose single leaf takes at most a quarter page is stored inline, in its parent's
//! leaf, as bbolt does; any other gets pages of its own. Leaves are packed up to the page
//! size; an element that alone exceeds a page gets a page with overflow pages. Integers in
//! page structures are little-endian: bbolt writes native byte order, and etcd runs on
//! little-endian machines (x86-64, arm64).

use std::io::{self, Seek, SeekFrom, Write};

/// The page size of the files written (bbolt's default on Linux, as etcd uses).
pub const PAGE_SIZE: usize = 4096;
/// bbolt's longest key.
pub const MAX_KEY_SIZE: usize = 32768;
/// bbolt's largest value.
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
/// Page header: id u64, flags u16, count u16, overflow u32.
const PAGE_HEADER: usize = 16;
/// Leaf element {flags, pos, ksize, vsize: u32} and branch element {pos, ksize: u32,
/// pgid: u64} are both 16 bytes.
const ELEMENT: usize = 16;
/// Bucket header stored as a nested bucket's value: root pgid u64, sequence u64.
const BUCKET_HEADER: usize = 16;
/// Largest bucket (page header plus elements) bbolt keeps inline: a quarter page.
const MAX_INLINE_BUCKET: usize = PAGE_SIZE / 4;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
/// Leaf element flag: the value is a bucket header.
const BUCKET_LEAF: u32 = 0x01;
const FREELIST_PGID: u64 = 2;
const FIRST_DATA_PGID: u64 = 3;
/// Bytes of the meta struct the checksum covers: everything before the checksum field.
const META_CHECKSUMMED: usize = 56;

/// Writes a bbolt file to `W`, which must be empty and positioned at its start.
pub struct DbWriter<W: Write + Seek> {
    pages: Pages<W>,
    /// The root bucket: top-level bucket names → bucket headers.
    root: Tree,
}

/// Adds one top-level bucket's keys, in ascending order; `finish` links it into the root.
/// A bucket dropped without `finish` is left out of the file (its pages stay unreachable).
pub struct BucketWriter<'a, W: Write + Seek> {
    db: &'a mut DbWriter<W>,
    name: Vec<u8>,
    tree: Tree,
}

/// The output and the next free page id.
struct Pages<W> {
    out: W,
    next: u64,
}

/// A leaf element's flags, key and value.
type LeafItem = (u32, Vec<u8>, Vec<u8>);

/// A B+tree being built bottom-up: the leaf being filled and the leaves already written.
struct Tree {
    /// The leaf being filled.
    leaf: Vec<LeafItem>,
    /// Encoded size of that leaf.
    leaf_size: usize,
    /// (first key, pgid) of each leaf written.
    leaves: Vec<(Vec<u8>, u64)>,
    /// The last key added once its leaf was written (for the ordering check).
    last_written: Option<Vec<u8>>,
}

impl<W: Write + Seek> DbWriter<W> {
    /// Starts a file: reserves the meta pages and writes the (empty) freelist.
    pub fn new(out: W) -> io::Result<DbWriter<W>> {
        let mut pages = Pages { out, next: 0 };
        pages.append(vec![0u8; 2 * PAGE_SIZE])?;
        let mut freelist = vec![0u8; PAGE_SIZE];
        put_header(&mut freelist, FREELIST_PGID, FREELIST_PAGE, 0, 0);
        pages.append(freelist)?;
        debug_assert_eq!(pages.next, FIRST_DATA_PGID);
        Ok(DbWriter { pages, root: Tree::new() })
    }

    /// Starts the next top-level bucket; names must be given in ascending byte order.
    pub fn bucket(&mut self, name: &[u8]) -> io::Result<BucketWriter<'_, W>> {
        check_key(name)?;
        Ok(BucketWriter { db: self, name: name.to_vec(), tree: Tree::new() })
    }

    /// Writes the root bucket and the meta pages; returns the output and the file's size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let root = self.root.finish(&mut self.pages)?;
        let high_water = self.pages.next;
        let mut metas = vec![0u8; 2 * PAGE_SIZE];
        for txid in 0..2u64 {
            let page = &mut metas[txid as usize * PAGE_SIZE..][..PAGE_SIZE];
            put_header(page, txid, META_PAGE, 0, 0);
            let meta = &mut page[PAGE_HEADER..];
            meta[0..4].copy_from_slice(&MAGIC.to_le_bytes());
            meta[4..8].copy_from_slice(&VERSION.to_le_bytes());
            meta[8..12].copy_from_slice(&(PAGE_SIZE as u32).to_le_bytes());
            // flags (12..16) and the root bucket's sequence (24..32) stay zero.
            meta[16..24].copy_from_slice(&root.to_le_bytes());
            meta[32..40].copy_from_slice(&FREELIST_PGID.to_le_bytes());
            meta[40..48].copy_from_slice(&high_water.to_le_bytes());
            meta[48..56].copy_from_slice(&txid.to_le_bytes());
            let sum = fnv64a(&meta[..META_CHECKSUMMED]);
            meta[56..64].copy_from_slice(&sum.to_le_bytes());
        }
        let size = high_water * PAGE_SIZE as u64;
        let out = &mut self.pages.out;
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&metas)?;
        out.seek(SeekFrom::Start(size))?;
        out.flush()?;
        Ok((self.pages.out, size))
    }
}

impl<W: Write + Seek> BucketWriter<'_, W> {
    /// Adds a key; keys must be non-empty, unique and given in ascending byte order.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> io::Result<()> {
        let value = value.into();
        if value.len() > MAX_VALUE_SIZE {
            return Err(invalid(format!("bolt: value of {} bytes is too large", value.len())));
        }
        self.tree.push(&mut self.db.pages, 0, key.into(), value)
    }

    /// Writes the bucket's remaining pages (or inlines a small bucket, as bbolt does) and
    /// links it into the root bucket.
    pub fn finish(mut self) -> io::Result<()> {
        let value = match self.tree.inline() {
            Some(value) => value,
            None => {
                let root = self.tree.finish(&mut self.db.pages)?;
                let mut header = vec![0u8; BUCKET_HEADER];
                header[..8].copy_from_slice(&root.to_le_bytes());
                header
            }
        };
        self.db.root.push(&mut self.db.pages, BUCKET_LEAF, self.name, value)
    }
}

impl Tree {
    fn new() -> Tree {
        Tree { leaf: Vec::new(), leaf_size: PAGE_HEADER, leaves: Vec::new(), last_written: None }
    }

    /// The bucket as bbolt stores a small one inline, in its parent's leaf: the bucket header
    /// (root 0) followed by its only leaf page, unpadded; `None` if it is not small.
    fn inline(&self) -> Option<Vec<u8>> {
        if !self.leaves.is_empty() || self.leaf_size > MAX_INLINE_BUCKET {
            return None;
        }
        let leaf =
            self.leaf.iter().map(|(f, k, v)| (Element::Leaf(*f, v.as_slice()), k.as_slice()));
        let mut value = vec![0u8; BUCKET_HEADER];
        value.extend_from_slice(&encode_page(0, LEAF_PAGE, leaf)[..self.leaf_size]);
        Some(value)
    }

    fn push(
        &mut self,
        pages: &mut Pages<impl Write>,
        flags: u32,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> io::Result<()> {
        check_key(&key)?;
        let last = self.leaf.last().map(|(_, k, _)| k).or(self.last_written.as_ref());
        if last.is_some_and(|last| *last >= key) {
            return Err(invalid("bolt: keys must be unique and in ascending order".into()));
        }
        let size = ELEMENT + key.len() + value.len();
        if !self.leaf.is_empty() && self.leaf_size + size > PAGE_SIZE {
            self.write_leaf(pages)?;
        }
        self.leaf_size += size;
        self.leaf.push((flags, key, value));
        Ok(())
    }

    fn write_leaf(&mut self, pages: &mut Pages<impl Write>) -> io::Result<()> {
        let items = std::mem::take(&mut self.leaf);
        self.leaf_size = PAGE_HEADER;
        let id = pages.next;
        let page = encode_page(
            id,
            LEAF_PAGE,
            items.iter().map(|(flags, k, v)| (Element::Leaf(*flags, v.as_slice()), k.as_slice())),
        );
        pages.append(page)?;
        let first = items.first().map(|(_, k, _)| k.clone()).unwrap_or_default();
        self.leaves.push((first, id));
        if let Some((_, last, _)) = items.into_iter().next_back() {
            self.last_written = Some(last);
        }
        Ok(())
    }

    /// Writes what is left and the branch levels above the leaves; returns the root's pgid.
    fn finish(&mut self, pages: &mut Pages<impl Write>) -> io::Result<u64> {
        if !self.leaf.is_empty() || self.leaves.is_empty() {
            // An empty tree is one empty leaf, as bbolt writes an empty bucket.
            self.write_leaf(pages)?;
        }
        let mut level = std::mem::take(&mut self.leaves);
        while level.len() > 1 {
            level = write_branches(pages, level)?;
        }
        Ok(level.first().map(|(_, id)| *id).unwrap_or(0))
    }
}

/// Writes one branch level over `children` ((first key, pgid) each); returns its pages.
fn write_branches(
    pages: &mut Pages<impl Write>,
    children: Vec<(Vec<u8>, u64)>,
) -> io::Result<Vec<(Vec<u8>, u64)>> {
    // Every branch gets at least two children (bbolt's minimum, and what makes each level
    // smaller than the one below); a page overflows only when two long keys need it.
    let mut groups: Vec<Vec<(Vec<u8>, u64)>> = vec![Vec::new()];
    let mut size = PAGE_HEADER;
    for child in children {
        let add = ELEMENT + child.0.len();
        if groups.last().is_some_and(|g| g.len() >= 2) && size + add > PAGE_SIZE {
            groups.push(Vec::new());
            size = PAGE_HEADER;
        }
        size += add;
        groups.last_mut().expect("groups is never empty").push(child);
    }
    let n = groups.len();
    if n > 1 && groups[n - 1].len() == 1 {
        if groups[n - 2].len() > 2 {
            let moved = groups[n - 2].pop().expect("has more than two");
            groups[n - 1].insert(0, moved);
        } else {
            let lone = groups.pop().expect("n > 1");
            groups[n - 2].extend(lone);
        }
    }
    let mut level = Vec::with_capacity(groups.len());
    for group in groups {
        let id = pages.next;
        let page = encode_page(
            id,
            BRANCH_PAGE,
            group.iter().map(|(k, child)| (Element::Branch(*child), k.as_slice())),
        );
        pages.append(page)?;
        let first = group.into_iter().next().map(|(k, _)| k).unwrap_or_default();
        level.push((first, id));
    }
    Ok(level)
}

impl<W: Write> Pages<W> {
    /// Appends whole pages (`bytes` is a multiple of the page size).
    fn append(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        debug_assert_eq!(bytes.len() % PAGE_SIZE, 0);
        self.out.write_all(&bytes)?;
        self.next += (bytes.len() / PAGE_SIZE) as u64;
        Ok(())
    }
}

/// What an element carries besides its key.
enum Element<'a> {
    /// A leaf element: its flags and value.
    Leaf(u32, &'a [u8]),
    /// A branch element: its child's pgid.
    Branch(u64),
}

/// Encodes a leaf or branch page (plus overflow pages): header, the element array, then
/// each element's key (and value), each `pos` counted from its element's own offset.
fn encode_page<'a>(
    id: u64,
    flags: u16,
    items: impl ExactSizeIterator<Item = (Element<'a>, &'a [u8])> + Clone,
) -> Vec<u8> {
    let count = items.len();
    let data: usize = items
        .clone()
        .map(|(e, k)| {
            k.len()
                + match e {
                    Element::Leaf(_, v) => v.len(),
                    Element::Branch(_) => 0,
                }
        })
        .sum();
    let size = PAGE_HEADER + count * ELEMENT + data;
    let page_count = size.div_ceil(PAGE_SIZE).max(1);
    let mut page = vec![0u8; page_count * PAGE_SIZE];
    // A page's elements fit in u16: each takes more than 16 bytes of a 4 KiB page, unless
    // it is alone on a page with overflow.
    put_header(&mut page, id, flags, count as u16, (page_count - 1) as u32);
    let mut off = PAGE_HEADER + count * ELEMENT;
    for (i, (element, key)) in items.enumerate() {
        let at = PAGE_HEADER + i * ELEMENT;
        let pos = (off - at) as u32;
        let e = &mut page[at..at + ELEMENT];
        match element {
            Element::Leaf(leaf_flags, value) => {
                e[0..4].copy_from_slice(&leaf_flags.to_le_bytes());
                e[4..8].copy_from_slice(&pos.to_le_bytes());
                e[8..12].copy_from_slice(&(key.len() as u32).to_le_bytes());
                e[12..16].copy_from_slice(&(value.len() as u32).to_le_bytes());
                page[off..off + key.len()].copy_from_slice(key);
                off += key.len();
                page[off..off + value.len()].copy_from_slice(value);
                off += value.len();
            }
            Element::Branch(child) => {
                e[0..4].copy_from_slice(&pos.to_le_bytes());
                e[4..8].copy_from_slice(&(key.len() as u32).to_le_bytes());
                e[8..16].copy_from_slice(&child.to_le_bytes());
                page[off..off + key.len()].copy_from_slice(key);
                off += key.len();
            }
        }
    }
    page
}

fn put_header(page: &mut [u8], id: u64, flags: u16, count: u16, overflow: u32) {
    page[0..8].copy_from_slice(&id.to_le_bytes());
    page[8..10].copy_from_slice(&flags.to_le_bytes());
    page[10..12].copy_from_slice(&count.to_le_bytes());
    page[12..16].copy_from_slice(&overflow.to_le_bytes());
}

fn check_key(key: &[u8]) -> io::Result<()> {
    if key.is_empty() {
        return Err(invalid("bolt: empty key".into()));
    }
    if key.len() > MAX_KEY_SIZE {
        return Err(invalid(format!("bolt: key of {} bytes is too large", key.len())));
    }
    Ok(())
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// 64-bit FNV-1a, bbolt's meta checksum.
fn fnv64a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::Cursor;

    use super::*;

    /// (key, value) pairs in order.
    pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
    /// Bucket name → its pairs.
    pub(crate) type Buckets = BTreeMap<Vec<u8>, Pairs>;

    /// A whole bbolt file holding `buckets` (also the reader's test input).
    pub(crate) fn write(buckets: &Buckets) -> Vec<u8> {
        let mut db = DbWriter::new(Cursor::new(Vec::new())).unwrap();
        for (name, items) in buckets {
            let mut b = db.bucket(name).unwrap();
            for (k, v) in items {
                b.put(k.as_slice(), v.as_slice()).unwrap();
            }
            b.finish().unwrap();
        }
        let (out, size) = db.finish().unwrap();
        let file = out.into_inner();
        assert_eq!(file.len() as u64, size);
        file
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// An independent reader that checks what bbolt (and `tx.Check`) relies on, and returns
    /// the buckets and the depth of each bucket's tree.
    struct Reader<'a> {
        file: &'a [u8],
        high_water: u64,
        seen: BTreeSet<u64>,
    }

    impl Reader<'_> {
        /// The page's bytes (with overflow), after checking its header and marking it seen.
        fn page(&mut self, id: u64) -> &[u8] {
            assert!(id >= FIRST_DATA_PGID && id < self.high_water, "page {id} out of range");
            let at = id as usize * PAGE_SIZE;
            let header = &self.file[at..at + PAGE_HEADER];
            assert_eq!(u64_at(header, 0), id, "page id recorded in its header");
            let overflow = u64::from(u32_at(header, 12));
            for p in id..=id + overflow {
                assert!(self.seen.insert(p), "page {p} referenced twice");
            }
            &self.file[at..at + (overflow as usize + 1) * PAGE_SIZE]
        }

        /// Walks a tree; returns its (flags, key, value) in order and its depth.
        fn tree(&mut self, id: u64) -> (Vec<LeafItem>, usize) {
            let page = self.page(id).to_vec();
            let flags = u16_at(&page, 8);
            let count = usize::from(u16_at(&page, 10));
            if flags == LEAF_PAGE {
                return (leaf_items(&page), 1);
            }
            assert_eq!(flags, BRANCH_PAGE, "page {id} is a leaf or a branch");
            let mut out = Vec::new();
            let mut depth = None;
            for i in 0..count {
                let at = PAGE_HEADER + i * ELEMENT;
                let e = &page[at..at + ELEMENT];
                let (pos, ks, child) = (u32_at(e, 0), u32_at(e, 4), u64_at(e, 8));
                let key = page[at + pos as usize..][..ks as usize].to_vec();
                let (items, d) = self.tree(child);
                assert_eq!(items.first().map(|i| &i.1), Some(&key), "branch key = first key");
                assert!(depth.is_none_or(|depth| depth == d), "leaves at one depth");
                depth = Some(d);
                out.extend(items);
            }
            if flags == BRANCH_PAGE {
                assert!(count >= 2, "branch page {id} has {count} children");
            }
            for pair in out.windows(2) {
                assert!(pair[0].1 < pair[1].1, "keys ascending");
            }
            (out, depth.map_or(1, |d| d + 1))
        }
    }

    /// A leaf page's (flags, key, value) items, checked to be in ascending key order and to
    /// end where the page's data ends; returns them.
    fn leaf_items(page: &[u8]) -> Vec<LeafItem> {
        assert_eq!(u16_at(page, 8), LEAF_PAGE);
        let count = usize::from(u16_at(page, 10));
        let mut end = PAGE_HEADER + count * ELEMENT;
        let mut out = Vec::new();
        for i in 0..count {
            let at = PAGE_HEADER + i * ELEMENT;
            let e = &page[at..at + ELEMENT];
            let (pos, ks, vs) = (u32_at(e, 4), u32_at(e, 8), u32_at(e, 12));
            let k = at + pos as usize;
            assert_eq!(k, end, "element data packed in order");
            let v = k + ks as usize;
            end = v + vs as usize;
            out.push((u32_at(e, 0), page[k..v].to_vec(), page[v..end].to_vec()));
        }
        assert!(page[end..].iter().all(|b| *b == 0), "nothing after the data");
        for pair in out.windows(2) {
            assert!(pair[0].1 < pair[1].1, "keys ascending");
        }
        out
    }

    /// Reads a file back; returns the buckets and the deepest tree (0: all inline).
    pub(crate) fn read(file: &[u8]) -> (Buckets, usize) {
        assert_eq!(file.len() % PAGE_SIZE, 0);
        let mut metas = Vec::new();
        for txid in 0..2u64 {
            let page = &file[txid as usize * PAGE_SIZE..][..PAGE_SIZE];
            assert_eq!(u64_at(page, 0), txid);
            assert_eq!(u16_at(page, 8), META_PAGE);
            let m = &page[PAGE_HEADER..PAGE_HEADER + 64];
            assert_eq!(u32_at(m, 0), MAGIC);
            assert_eq!(u32_at(m, 4), VERSION);
            assert_eq!(u32_at(m, 8), PAGE_SIZE as u32);
            assert_eq!(u64_at(m, 48), txid);
            assert_eq!(u64_at(m, 56), fnv64a(&m[..56]), "meta checksum");
            metas.push((u64_at(m, 16), u64_at(m, 32), u64_at(m, 40)));
        }
        assert_eq!(metas[0], metas[1], "metas agree but for the txid");
        let (root, freelist, high_water) = metas[0];
        assert_eq!(freelist, FREELIST_PGID);
        assert_eq!(high_water * PAGE_SIZE as u64, file.len() as u64, "file ends at high water");
        let fl = &file[FREELIST_PGID as usize * PAGE_SIZE..];
        assert_eq!((u64_at(fl, 0), u16_at(fl, 8), u16_at(fl, 10)), (2, FREELIST_PAGE, 0));

        let mut r = Reader { file, high_water, seen: BTreeSet::new() };
        let (top, _) = r.tree(root);
        let mut depth = 0;
        let mut buckets = Buckets::new();
        for (flags, name, header) in top {
            assert_eq!(flags, BUCKET_LEAF);
            assert_eq!(u64_at(&header, 8), 0, "sequence");
            let items = match u64_at(&header, 0) {
                0 => {
                    let page = &header[BUCKET_HEADER..];
                    assert!(page.len() <= MAX_INLINE_BUCKET, "inline bucket is small");
                    assert_eq!(u64_at(page, 0), 0, "inline page id");
                    leaf_items(page)
                }
                root => {
                    assert_eq!(header.len(), BUCKET_HEADER);
                    let (items, d) = r.tree(root);
                    depth = depth.max(d);
                    items
                }
            };
            assert!(items.iter().all(|(f, _, _)| *f == 0), "no nested buckets");
            buckets.insert(name, items.into_iter().map(|(_, k, v)| (k, v)).collect());
        }
        let all: BTreeSet<u64> = (FIRST_DATA_PGID..high_water).collect();
        assert_eq!(r.seen, all, "every data page reachable exactly once");
        (buckets, depth)
    }

    fn bucket(name: &str, items: Pairs) -> (Vec<u8>, Pairs) {
        (name.as_bytes().to_vec(), items)
    }

    #[test]
    fn empty_file_and_empty_buckets() {
        let none = Buckets::new();
        let file = write(&none);
        assert_eq!(file.len(), 4 * PAGE_SIZE, "metas, freelist, empty root leaf");
        assert_eq!(read(&file).0, none);

        let empty: Buckets = [bucket("a", vec![]), bucket("b", vec![])].into_iter().collect();
        let file = write(&empty);
        assert_eq!(file.len(), 4 * PAGE_SIZE, "empty buckets are inline");
        assert_eq!(read(&file).0, empty);
    }

    #[test]
    fn small_buckets_are_inline_up_to_a_quarter_page() {
        // One element of 16 + 1 + 990 bytes after the page header: 1023, then 1024, 1025.
        for (value_len, pages) in [(990, 4), (991, 4), (992, 5)] {
            let items = vec![(b"k".to_vec(), vec![5u8; value_len])];
            let buckets: Buckets = [bucket("b", items)].into_iter().collect();
            let file = write(&buckets);
            assert_eq!(file.len(), pages * PAGE_SIZE, "value of {value_len} bytes");
            assert_eq!(read(&file), (buckets, pages - 4));
        }
    }

    #[test]
    fn many_keys_make_leaves_and_branch_levels() {
        let items: Vec<(Vec<u8>, Vec<u8>)> = (0..20_000u64)
            .map(|i| {
                let mut k = i.to_be_bytes().to_vec();
                k.push(b'_');
                k.extend_from_slice(&0u64.to_be_bytes());
                (k, format!("value-{i}").into_bytes())
            })
            .collect();
        let small = vec![(b"x".to_vec(), b"1".to_vec())];
        let buckets: Buckets = [bucket("key", items), bucket("meta", small)].into_iter().collect();
        let file = write(&buckets);
        let (back, depth) = read(&file);
        assert_eq!(back, buckets);
        assert!(depth >= 3, "20k keys need two branch levels (depth {depth})");
        // Leaves are packed: far fewer pages than one per key, and each page mostly full.
        let pages = file.len() / PAGE_SIZE;
        assert!(pages < 20_000 / 50, "{pages} pages");
    }

    #[test]
    fn large_values_and_keys_get_overflow_pages() {
        let items = vec![
            (b"a".to_vec(), b"small".to_vec()),
            (b"b".to_vec(), vec![7u8; 3 * PAGE_SIZE + 5]),
            (b"c".to_vec(), b"small".to_vec()),
            (vec![b'd'; MAX_KEY_SIZE], vec![1u8; 10]),
            (b"e".to_vec(), vec![9u8; PAGE_SIZE - PAGE_HEADER - ELEMENT - 1]),
            (b"f".to_vec(), vec![]),
        ];
        let buckets: Buckets = [bucket("big", items)].into_iter().collect();
        let file = write(&buckets);
        assert_eq!(read(&file).0, buckets);
        // The first big value's page carries three overflow pages.
        let overflows: Vec<u32> = (FIRST_DATA_PGID as usize..file.len() / PAGE_SIZE)
            .map(|p| u32_at(&file[p * PAGE_SIZE..], 12))
            .collect();
        assert!(overflows.contains(&3), "{overflows:?}");
    }

    #[test]
    fn many_buckets_split_the_root() {
        let buckets: Buckets = (0..1000)
            .map(|i| bucket(&format!("bucket-{i:05}"), vec![(b"k".to_vec(), vec![i as u8])]))
            .collect();
        let file = write(&buckets);
        assert_eq!(read(&file).0, buckets);
    }

    #[test]
    fn rejects_bad_keys() {
        let mut db = DbWriter::new(Cursor::new(Vec::new())).unwrap();
        assert!(db.bucket(b"").is_err());
        let mut b = db.bucket(b"b").unwrap();
        assert!(b.put(b"".as_slice(), b"v".as_slice()).is_err());
        assert!(b.put(vec![1u8; MAX_KEY_SIZE + 1], b"v".as_slice()).is_err());
        b.put(b"k2".as_slice(), b"v".as_slice()).unwrap();
        assert!(b.put(b"k2".as_slice(), b"v".as_slice()).is_err(), "duplicate");
        assert!(b.put(b"k1".as_slice(), b"v".as_slice()).is_err(), "descending");
        b.finish().unwrap();
        assert!(db.bucket(b"a").unwrap().finish().is_err(), "bucket names descending");
    }

    #[test]
    fn fnv64a_matches_reference_vectors() {
        assert_eq!(fnv64a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}

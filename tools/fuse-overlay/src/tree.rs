//! The inode table: what the kernel has looked up, by node id.
//!
//! A node is one file of the merged view. Its id is what `stat` shows as `st_ino`: the inode
//! number of the file where it was first found (so numbers are stable across copy-up, and two
//! names of one hardlinked file are one node, as the kernel expects), or a fresh number when
//! that is taken or is the root's. A node has one or more names (parent, name); it stays after
//! its last name is removed until the kernel forgets it (an open, unlinked file).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

pub type Ino = u64;
pub const ROOT: Ino = 1;
/// Ids above this are never taken from a file system's inode numbers.
const SYNTHETIC: u64 = 1 << 62;

/// A file's identity on disk: (st_dev, st_ino).
pub type DiskKey = (u64, u64);

#[derive(Debug, Clone)]
pub struct Node {
    pub names: Vec<(Ino, OsString)>,
    pub is_dir: bool,
    /// The topmost layer holding the file.
    pub layer: usize,
    /// For directories: the merged layers (see `layers::Found`).
    pub dir_layers: Vec<usize>,
    /// Every on-disk file that is this node (the original and its copy-up).
    pub keys: Vec<DiskKey>,
    /// A metadata-only copy in the upper layer: the lower file holding its data.
    pub data: Option<std::path::PathBuf>,
    pub nlookup: u64,
}

#[derive(Debug, Default)]
pub struct Tree {
    nodes: HashMap<Ino, Node>,
    by_name: HashMap<(Ino, OsString), Ino>,
    by_key: HashMap<DiskKey, Ino>,
    next: u64,
}

impl Tree {
    pub fn new(root: Node) -> Tree {
        let mut t = Tree {
            next: SYNTHETIC,
            ..Tree::default()
        };
        for k in &root.keys {
            t.by_key.insert(*k, ROOT);
        }
        t.nodes.insert(ROOT, root);
        t
    }

    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    pub fn child(&self, parent: Ino, name: &OsStr) -> Option<Ino> {
        self.by_name.get(&(parent, name.to_os_string())).copied()
    }

    pub fn by_key(&self, key: DiskKey) -> Option<Ino> {
        self.by_key.get(&key).copied()
    }

    /// The node's path relative to the layer roots, or `None` once it has no name left.
    pub fn path(&self, ino: Ino) -> Option<PathBuf> {
        let mut parts = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let (parent, name) = self.nodes.get(&cur)?.names.first()?;
            parts.push(name.as_os_str());
            cur = *parent;
        }
        Some(parts.iter().rev().collect())
    }

    /// Whether `ino` is `ancestor` or lies below it (by first names).
    pub fn is_within(&self, mut ino: Ino, ancestor: Ino) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.nodes.get(&ino).and_then(|n| n.names.first()) {
                Some((p, _)) => ino = *p,
                None => return false,
            }
        }
    }

    pub fn ids(&self) -> Vec<Ino> {
        self.nodes.keys().copied().collect()
    }

    /// Adds a looked-up file under (parent, name), reusing the node of the same disk file
    /// (another hardlink name) when there is one. Counts one lookup.
    pub fn insert(&mut self, parent: Ino, name: &OsStr, node: Node, st_ino: u64) -> Ino {
        let key = (parent, name.to_os_string());
        if let Some(&ino) = self.by_name.get(&key) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.nlookup += 1;
                return ino;
            }
        }
        // Another name of a known file (a hardlink). Directories have one name only.
        let existing = node
            .keys
            .iter()
            .find_map(|k| self.by_key.get(k).copied())
            .filter(|ino| !node.is_dir && self.nodes.get(ino).is_some_and(|n| !n.is_dir));
        let ino = match existing {
            Some(ino) => {
                let n = self
                    .nodes
                    .get_mut(&ino)
                    .expect("by_key points at live nodes");
                n.names.push(key.clone());
                n.nlookup += 1;
                ino
            }
            None => {
                let ino =
                    if st_ino > ROOT && st_ino < SYNTHETIC && !self.nodes.contains_key(&st_ino) {
                        st_ino
                    } else {
                        self.next += 1;
                        self.next
                    };
                for k in &node.keys {
                    self.by_key.insert(*k, ino);
                }
                let mut node = node;
                node.names = vec![key.clone()];
                node.nlookup = 1;
                self.nodes.insert(ino, node);
                ino
            }
        };
        self.by_name.insert(key, ino);
        ino
    }

    /// Records another disk file as `ino` (its copy-up).
    pub fn add_key(&mut self, ino: Ino, key: DiskKey) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            if !n.keys.contains(&key) {
                n.keys.push(key);
            }
            self.by_key.insert(key, ino);
        }
    }

    /// Adds a name to an existing node (a new hardlink).
    pub fn add_name(&mut self, ino: Ino, parent: Ino, name: &OsStr) {
        let key = (parent, name.to_os_string());
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.names.push(key.clone());
            n.nlookup += 1;
            self.by_name.insert(key, ino);
        }
    }

    /// Removes the name (parent, name) from whatever node has it.
    pub fn remove_name(&mut self, parent: Ino, name: &OsStr) -> Option<Ino> {
        let key = (parent, name.to_os_string());
        let ino = self.by_name.remove(&key)?;
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.names.retain(|k| k != &key);
        }
        Some(ino)
    }

    /// Forgets that a disk file is a node: once its last link is gone the filesystem may give
    /// its inode number to a new file, which must not be taken for this node.
    pub fn drop_key(&mut self, key: DiskKey) {
        if let Some(ino) = self.by_key.remove(&key) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.keys.retain(|k| *k != key);
            }
        }
    }

    /// Moves a name (rename), replacing whatever had the new name.
    pub fn rename(&mut self, parent: Ino, name: &OsStr, new_parent: Ino, new_name: &OsStr) {
        self.remove_name(new_parent, new_name);
        if let Some(ino) = self.remove_name(parent, name) {
            let key = (new_parent, new_name.to_os_string());
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.names.insert(0, key.clone());
            }
            self.by_name.insert(key, ino);
        }
    }

    /// Drops `n` lookups; a node nobody looks at any more is removed.
    pub fn forget(&mut self, ino: Ino, n: u64) {
        if ino == ROOT {
            return;
        }
        let gone = match self.nodes.get_mut(&ino) {
            Some(node) => {
                node.nlookup = node.nlookup.saturating_sub(n);
                node.nlookup == 0
            }
            None => false,
        };
        if gone {
            if let Some(node) = self.nodes.remove(&ino) {
                for key in node.names {
                    if self.by_name.get(&key) == Some(&ino) {
                        self.by_name.remove(&key);
                    }
                }
                for k in node.keys {
                    if self.by_key.get(&k) == Some(&ino) {
                        self.by_key.remove(&k);
                    }
                }
            }
        }
    }
}

impl Tree {
    /// Gives `ino` the name (parent, name) as its first name, without counting a lookup (the
    /// two sides of an exchange).
    pub fn place(&mut self, ino: Ino, parent: Ino, name: &OsStr) {
        let key = (parent, name.to_os_string());
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.names.insert(0, key.clone());
            self.by_name.insert(key, ino);
        }
    }

    /// The node at a path, if the kernel has looked every part of it up.
    pub fn at_path(&self, rel: &std::path::Path) -> Option<Ino> {
        let mut cur = ROOT;
        for c in rel.components() {
            cur = self.child(cur, c.as_os_str())?;
        }
        Some(cur)
    }
}

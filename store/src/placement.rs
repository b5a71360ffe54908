//! Where a resource lives: buckets, the shard map, and ids that carry their bucket.
//!
//! Resources are placed in a fixed number of buckets; a versioned shard map assigns buckets
//! to shards, so a shard is added by moving buckets. Everything in a patient's compartment
//! goes to the patient's bucket. A server-assigned id is 32 lowercase hex digits whose first
//! four are its bucket, so reading it asks exactly one shard; a client-assigned id is found
//! through the locator table.

use sha2::{Digest, Sha256};

/// The number of buckets of a new cluster. Fixed for the life of a cluster's data.
pub const DEFAULT_BUCKETS: u32 = 1024;

/// Bucket → shard assignment, versioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// Version of the map; bumped whenever a bucket moves.
    pub version: u64,
    /// `assignment[bucket]` is the index of the shard that holds the bucket.
    pub assignment: Vec<u16>,
}

impl ShardMap {
    /// The initial map of a cluster: bucket `b` on shard `b mod n_shards`.
    pub fn round_robin(n_buckets: u32, n_shards: usize) -> ShardMap {
        let n_shards = n_shards.max(1);
        ShardMap {
            version: 1,
            assignment: (0..n_buckets)
                .map(|b| (b as usize % n_shards) as u16)
                .collect(),
        }
    }

    /// The number of buckets.
    pub fn n_buckets(&self) -> u32 {
        self.assignment.len() as u32
    }

    /// The shard that holds a bucket.
    pub fn shard_of(&self, bucket: u32) -> usize {
        self.assignment.get(bucket as usize).copied().unwrap_or(0) as usize
    }

    /// The bucket a key hashes to. Stable across releases: data placement depends on it.
    pub fn hash_bucket(&self, key: &str) -> u32 {
        let digest = Sha256::digest(key.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(self.n_buckets().max(1))) as u32
    }

    /// The bucket encoded in a server-assigned id, if `id` is one.
    pub fn server_id_bucket(&self, id: &str) -> Option<u32> {
        if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let bucket = u32::from_str_radix(&id[..4], 16).ok()?;
        (bucket < self.n_buckets()).then_some(bucket)
    }

    /// A new server-assigned id in `bucket`.
    pub fn new_id(&self, bucket: u32) -> String {
        let random: [u8; 14] = rand::random();
        format!("{:04x}{}", bucket, hex::encode(random))
    }

    /// The server-format id derived from `key` in `bucket`: the same key always gives the
    /// same id (idempotent creates).
    pub fn derived_id(&self, bucket: u32, key: &str) -> String {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(key.as_bytes());
        format!("{:04x}{}", bucket, &hex::encode(digest)[..28])
    }

    /// The bucket of a patient's compartment.
    pub fn patient_bucket(&self, patient_id: &str) -> u32 {
        self.server_id_bucket(patient_id)
            .unwrap_or_else(|| self.hash_bucket(&format!("Patient/{patient_id}")))
    }

    /// The bucket whose shard holds the locator row of a client-assigned id.
    pub fn locator_bucket(&self, rtype: &str, id: &str) -> u32 {
        self.hash_bucket(&format!("{rtype}/{id}"))
    }

    /// A random bucket, for a new resource outside any compartment.
    pub fn random_bucket(&self) -> u32 {
        rand::random_range(0..self.n_buckets().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_carry_their_bucket() {
        let map = ShardMap::round_robin(DEFAULT_BUCKETS, 2);
        for bucket in [0, 1, 513, 1023] {
            let id = map.new_id(bucket);
            assert_eq!(map.server_id_bucket(&id), Some(bucket), "{id}");
            assert_eq!(map.patient_bucket(&id), bucket);
        }
        assert_eq!(map.server_id_bucket("example"), None);
        assert_eq!(
            map.server_id_bucket(&"f".repeat(32)),
            None,
            "bucket out of range"
        );
        assert_eq!(map.shard_of(513), 1);
        // Placement must never change between releases.
        assert_eq!(
            map.hash_bucket("Patient/example"),
            map.hash_bucket("Patient/example")
        );
        assert_eq!(map.hash_bucket("Patient/example"), 0x36b);
    }
}

//! The S3-compatible segment store (S3, R2, Ceph, SeaweedFS, MinIO) through the `object_store` crate.
//!
//! Create-if-absent writes use `PUT` with `If-None-Match: *` (`PutMode::Create`), which the
//! object store evaluates atomically, so two hubs racing for one position can never both win.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use heph_format::{Origin, OwnerId};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

use super::{SegmentStore, StoreError, keys};

/// Connection settings for an S3 store. Unset fields fall back to the standard `AWS_*`
/// environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// Endpoint URL, e.g. `http://127.0.0.1:8333` (path-style requests are used).
    pub endpoint: Option<String>,
    /// Region (default `us-east-1`).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
}

/// A store in one bucket under an optional key prefix.
#[derive(Debug, Clone)]
pub struct S3Store {
    inner: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
}

fn backend(e: object_store::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl S3Store {
    /// Configures (does not contact) the store for `bucket` and key `prefix` (may be empty).
    pub fn open(bucket: &str, prefix: &str, opts: &S3Options) -> Result<S3Store, StoreError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
        let endpoint = opts
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(ep) = &endpoint {
            b = b
                .with_endpoint(ep)
                .with_allow_http(ep.starts_with("http://"));
        }
        let region = opts
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_owned());
        b = b.with_region(region);
        if let Some(k) = &opts.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &opts.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let inner = b.build().map_err(|e| StoreError::BadUrl {
            url: format!("s3://{bucket}/{prefix}"),
            reason: e.to_string(),
        })?;
        Ok(S3Store {
            inner: Arc::new(inner),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Create-if-absent; returns the existing bytes when the key exists.
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .put_opts(&path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(None),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => match self.get_object(key).await? {
                Some(existing) => Ok(Some(existing)),
                None => Err(StoreError::Backend(format!(
                    "{key}: conditional create was refused but the object cannot be read"
                ))),
            },
            Err(e) => Err(backend(e)),
        }
    }

    async fn get_object(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&self.path(key)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(backend)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    /// Names of the direct children (objects and "directories") under `key/`.
    async fn children(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let prefix = self.path(key);
        let listed = self
            .inner
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(backend)?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }
}

#[async_trait]
impl SegmentStore for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn create(&self, key: &str, bytes: Bytes) -> Result<Option<Bytes>, StoreError> {
        self.put_if_absent(key, bytes).await
    }

    async fn read(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.get_object(key).await
    }

    async fn list_positions(
        &self,
        owner: OwnerId,
        origin: Origin,
        after: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError> {
        let chain = keys::chain(owner, origin);
        let prefix = self.path(&chain);
        let offset = self.path(&format!("{chain}/{}", keys::position_name(after)));
        let mut stream = self.inner.list_with_offset(Some(&prefix), &offset);
        let mut seqs = Vec::new();
        while let Some(meta) = stream.try_next().await.map_err(backend)? {
            if let Some(seq) = meta.location.filename().and_then(keys::parse_position_name)
                && seq > after
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        seqs.truncate(limit);
        Ok(seqs)
    }

    async fn list_origins(&self, owner: OwnerId) -> Result<Vec<Origin>, StoreError> {
        Ok(super::canonical_origins(
            self.children(&keys::owner_chains(owner)).await?,
        ))
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.get_object(keys::OWNER).await.map(|_| ())
    }
}

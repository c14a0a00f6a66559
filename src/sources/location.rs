//! Where a source's bytes live: local paths, globs and directories, and object stores
//! (`s3://`, `gs://`, `az://`, `http(s)://`) with credentials taken from the environment.

use std::path::{Path, PathBuf};

use super::ReadError;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

pub use crate::config::redact;

/// One file of a source, local or in an object store.
#[derive(Debug, Clone)]
pub struct FileRef {
    /// What a user recognises: a local path or a full URL.
    pub display: String,
    pub kind: FileKind,
}

#[derive(Debug, Clone)]
pub enum FileKind {
    Local(PathBuf),
    Object {
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
    },
}

impl FileRef {
    /// Read the whole file. Sources are read once per run, so one request per file is cheapest.
    pub async fn read(&self) -> Result<Bytes, super::ReadError> {
        match &self.kind {
            FileKind::Local(p) => tokio::fs::read(p)
                .await
                .map(Bytes::from)
                .map_err(|e| ReadError(format!("cannot read {}: {e}", p.display()))),
            FileKind::Object { store, path } => {
                let got = store
                    .get(path)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", self.display))?;
                got.bytes()
                    .await
                    .map_err(|e| ReadError(format!("cannot read {}: {e}", self.display)))
            }
        }
    }
}

/// Replace `${VAR}` with the environment variable's value; an unset variable is an error.
pub fn expand_env(s: &str) -> Result<String, super::ReadError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
        let var = &after[..end];
        let value = std::env::var(var)
            .map_err(|_| format!("environment variable {var} (used in the location) is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// True when the location is a URL with a scheme we hand to object_store.
pub fn is_url(location: &str) -> bool {
    [
        "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "http://", "https://",
        "file://",
    ]
    .iter()
    .any(|p| location.to_ascii_lowercase().starts_with(p))
}

/// Build an object store for a URL's bucket/container/host, configured from the environment
/// (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
pub fn object_store_for(url: &Url) -> Result<Arc<dyn ObjectStore>, super::ReadError> {
    let as_str = url.as_str();
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(as_str)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(as_str)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "az" | "abfs" | "abfss" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(as_str)
                .build()
                .map_err(|e| e.to_string())?,
        ),
        "http" | "https" => {
            let origin = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
                + &url.port().map(|p| format!(":{p}")).unwrap_or_default();
            Arc::new(
                object_store::http::HttpBuilder::new()
                    .with_url(origin)
                    // The user wrote `http://` on purpose; object_store refuses it by default.
                    .with_client_options(
                        object_store::ClientOptions::new().with_allow_http(url.scheme() == "http"),
                    )
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        }
        "file" => Arc::new(object_store::local::LocalFileSystem::new()),
        other => return Err(ReadError(format!("unsupported URL scheme `{other}`"))),
    };
    Ok(store)
}

/// The base URL (scheme and authority) an object store is registered under in DataFusion.
pub fn store_base_url(url: &Url) -> Url {
    let mut base = url.clone();
    base.set_path("/");
    base.set_query(None);
    base.set_fragment(None);
    base
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Bookkeeping files are not data: `.crc`/`_SUCCESS` of lake writers, and the `~$book.xlsx`
/// lock file Excel keeps beside a workbook it has open.
fn is_data_file(name: &str) -> bool {
    !(name.starts_with('.') || name.starts_with('_') || name.starts_with("~$"))
}

/// Expand a location into the files it names, sorted so runs are reproducible.
pub async fn resolve_files(location: &str, root: &Path) -> Result<Vec<FileRef>, super::ReadError> {
    if is_url(location) {
        return resolve_object_files(location).await;
    }
    let path = if Path::new(location).is_absolute() {
        PathBuf::from(location)
    } else {
        root.join(location)
    };
    let text = path.to_string_lossy().to_string();
    let mut files = Vec::new();
    if has_glob(location) {
        let entries = glob::glob(&text).map_err(|e| format!("bad glob pattern: {e}"))?;
        for entry in entries {
            let p = entry.map_err(|e| e.to_string())?;
            if p.is_file()
                && p.file_name()
                    .is_some_and(|n| is_data_file(&n.to_string_lossy()))
            {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(ReadError(format!("no file matches {text}")));
        }
    } else if path.is_dir() {
        let rd = std::fs::read_dir(&path).map_err(|e| format!("cannot list {text}: {e}"))?;
        for entry in rd {
            let entry = entry.map_err(|e| e.to_string())?;
            let p = entry.path();
            if p.is_file() && is_data_file(&entry.file_name().to_string_lossy()) {
                files.push(p);
            }
        }
        if files.is_empty() {
            return Err(ReadError(format!("directory {text} holds no data files")));
        }
    } else if path.is_file() {
        files.push(path);
    } else {
        return Err(ReadError(format!("file not found: {text}")));
    }
    files.sort();
    Ok(files
        .into_iter()
        .map(|p| FileRef {
            // Paths inside the project are shown relative to it: shorter, and stable when the
            // project directory moves.
            display: p.strip_prefix(root).unwrap_or(&p).display().to_string(),
            kind: FileKind::Local(p),
        })
        .collect())
}

async fn resolve_object_files(location: &str) -> Result<Vec<FileRef>, super::ReadError> {
    let url = Url::parse(location).map_err(|e| format!("bad URL: {e}"))?;
    let store = object_store_for(&url)?;
    let base = store_base_url(&url);
    let key = url.path().trim_start_matches('/').to_string();
    let key = percent_decode(&key);
    let display = |p: &ObjectPath| format!("{}{}", base.as_str(), p.as_ref());
    if url.scheme().starts_with("http") {
        if has_glob(&key) {
            return Err("globs are not supported over http(s); name each file".into());
        }
        let path = ObjectPath::from(key.as_str());
        return Ok(vec![FileRef {
            display: display(&path),
            kind: FileKind::Object { store, path },
        }]);
    }
    let (prefix, pattern) = if has_glob(&key) {
        let cut = key.find(['*', '?', '[']).unwrap_or(key.len());
        let prefix = key[..cut]
            .rsplit_once('/')
            .map_or("", |(p, _)| p)
            .to_string();
        let pattern = glob::Pattern::new(&key).map_err(|e| format!("bad glob pattern: {e}"))?;
        (prefix, Some(pattern))
    } else {
        (key.trim_end_matches('/').to_string(), None)
    };
    if pattern.is_none() && !prefix.is_empty() && !key.ends_with('/') {
        // A plain key usually names one object; `list` only finds what is *under* a prefix.
        let path = ObjectPath::from(prefix.as_str());
        if store.head(&path).await.is_ok() {
            return Ok(vec![FileRef {
                display: display(&path),
                kind: FileKind::Object { store, path },
            }]);
        }
    }
    let prefix_path = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
    let listed: Vec<_> = store
        .list(prefix_path.as_ref())
        .try_collect()
        .await
        .map_err(|e| format!("cannot list {location}: {e}"))?;
    let mut files: Vec<ObjectPath> = listed
        .into_iter()
        .map(|m| m.location)
        .filter(|p| p.filename().is_some_and(is_data_file))
        .filter(|p| match &pattern {
            Some(pat) => pat.matches(p.as_ref()),
            // A plain key names one object, or every object under it when it is a "directory".
            None => p.as_ref() == prefix || p.as_ref().starts_with(&format!("{prefix}/")),
        })
        .collect();
    files.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
    if files.is_empty() {
        return Err(ReadError(format!("no object found at {location}")));
    }
    Ok(files
        .into_iter()
        .map(|path| FileRef {
            display: display(&path),
            kind: FileKind::Object {
                store: store.clone(),
                path,
            },
        })
        .collect())
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        std::env::set_var("PANORAMA_TEST_LOC_VAR", "secret");
        assert_eq!(
            expand_env("postgres://u:${PANORAMA_TEST_LOC_VAR}@h/db").unwrap(),
            "postgres://u:secret@h/db"
        );
        let err = expand_env("x${PANORAMA_SURELY_UNSET_VAR}").unwrap_err().0;
        assert!(err.contains("PANORAMA_SURELY_UNSET_VAR"), "{err}");
    }

    #[test]
    fn redacts_password() {
        assert_eq!(
            redact("postgres://u:secret@localhost:5432/db"),
            "postgres://u:***@localhost:5432/db"
        );
        assert_eq!(
            redact("mysql://u:pw@h:3306/shop"),
            "mysql://u:***@h:3306/shop"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn data_files_skip_bookkeeping() {
        assert!(is_data_file("part-0.parquet"));
        assert!(!is_data_file("_SUCCESS"));
        assert!(!is_data_file(".part-0.crc"));
        assert!(!is_data_file("~$attendees.xlsx"));
    }
}

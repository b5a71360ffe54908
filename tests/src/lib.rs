//! Test and benchmark harness: a real local cluster (shards of a primary and a streaming
//! standby, started by the project's own launcher), a real gateway on a free loopback port,
//! and a real HTTP client.
//!
//! One cluster serves a whole test binary; each test gets a fresh database on every shard,
//! so tests run side by side without seeing each other's data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use gateway::auth::{AuthConfig, Claims};
use gateway::{AppState, GatewayConfig, Limits};
use serde_json::Value;
use store::cluster::{ClusterSpec, LocalCluster};

/// The shared folder beside the checkout (test data and terminology tables).
pub fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// A fresh, unique temporary folder.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let suffix: u64 = rand::random();
    std::env::temp_dir().join(format!("{prefix}-{}-{suffix:x}", std::process::id()))
}

/// A cluster for a test binary, stopped (and its folder removed) on drop.
pub struct TestCluster {
    /// The cluster.
    pub cluster: LocalCluster,
    dir: PathBuf,
    next_db: AtomicU32,
}

impl TestCluster {
    /// Starts a cluster with `n_shards` shards of a primary and one synchronous standby.
    pub fn start(n_shards: usize) -> Result<TestCluster> {
        TestCluster::start_spec(&ClusterSpec {
            n_shards,
            n_standbys: 1,
            synchronous: true,
            durable: false,
        })
    }

    /// Starts a cluster of the given shape.
    pub fn start_spec(spec: &ClusterSpec) -> Result<TestCluster> {
        let dir = temp_dir("fhirgate-test");
        let cluster = LocalCluster::start(&dir, spec).context("starting the test cluster")?;
        Ok(TestCluster {
            cluster,
            dir,
            next_db: AtomicU32::new(0),
        })
    }

    /// Creates a fresh database on every shard and applies the migrations.
    pub async fn fresh_database(&self) -> Result<String> {
        let n = self.next_db.fetch_add(1, Ordering::SeqCst);
        let db = format!("t{}_{n}", std::process::id());
        let cluster = &self.cluster;
        let name = db.clone();
        tokio::task::block_in_place(|| cluster.create_database(&name))
            .context("creating a test database")?;
        gateway::up::migrate(cluster, &db).await?;
        Ok(db)
    }

    /// Stops the cluster and removes its folder.
    pub fn stop(mut self) -> Result<()> {
        self.cluster.stop().context("stopping the test cluster")?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// A gateway serving one fresh database of a [`TestCluster`].
pub struct TestServer {
    /// `http://127.0.0.1:PORT/fhir`
    pub base: String,
    /// The store the gateway uses.
    pub store: store::Store,
    /// The database name.
    pub db: String,
    /// HTTP client.
    pub http: reqwest::Client,
    auth: AuthConfig,
    answered: Arc<std::sync::atomic::AtomicU64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a gateway on a free port over a fresh database.
    pub async fn start(cluster: &TestCluster, limits: Limits) -> Result<TestServer> {
        TestServer::start_with_auth(cluster, limits, TestServer::dev_auth()).await
    }

    /// Development token settings with a fresh random key.
    pub fn dev_auth() -> AuthConfig {
        let mut auth = AuthConfig::dev(
            gateway::up::DEV_ISSUER,
            gateway::up::DEV_AUDIENCE,
            rand::random::<[u8; 32]>().to_vec(),
        );
        auth.leeway_secs = 5;
        auth
    }

    /// Starts a gateway that verifies tokens with `auth`.
    pub async fn start_with_auth(
        cluster: &TestCluster,
        limits: Limits,
        auth: AuthConfig,
    ) -> Result<TestServer> {
        TestServer::start_configured(cluster, TestServer::config(limits, auth)).await
    }

    /// The gateway settings of the tests: `limits`, `auth`, default terminology policy, no
    /// trusted proxy, one-hour break-glass windows.
    pub fn config(limits: Limits, auth: AuthConfig) -> GatewayConfig {
        GatewayConfig {
            limits,
            auth,
            base_url: None,
            terminology_policy: Default::default(),
            trusted_proxies: Vec::new(),
            break_glass_window: std::time::Duration::from_secs(3600),
        }
    }

    /// Starts a gateway with `config` (its `auth` must be able to mint development tokens for
    /// [`TestServer::token`] to work).
    pub async fn start_configured(
        cluster: &TestCluster,
        config: GatewayConfig,
    ) -> Result<TestServer> {
        let db = cluster.fresh_database().await?;
        let store_config = gateway::up::store_config(&cluster.cluster, &db);
        TestServer::start_on(&store_config, db, config).await
    }

    /// Starts a gateway over any store (its database `db` migrated already).
    pub async fn start_on(
        store_config: &store::StoreConfig,
        db: String,
        config: GatewayConfig,
    ) -> Result<TestServer> {
        let store = store::Store::connect(store_config)?;
        let terminology = terminology::Terminology::load_dir(&shared_dir().join("terminology"))?;
        let auth = config.auth.clone();
        let state = AppState {
            store: store.clone(),
            config: Arc::new(config),
            terminology: Arc::new(terminology),
            answered: Default::default(),
        };
        let answered = state.answered.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(gateway::serve(listener, state, async {
            let _ = rx.await;
        }));
        Ok(TestServer {
            base: format!("http://{addr}/fhir"),
            store,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            auth,
            answered,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// A token for the `system` role with `system/*.cruds`.
    pub fn system_token(&self) -> String {
        self.token("system", "system/*.cruds", 3600)
    }

    /// A token with the given role and scopes, valid for `ttl` seconds (negative: expired).
    pub fn token(&self, role: &str, scope: &str, ttl: i64) -> String {
        self.token_for(role, scope, None, None, ttl)
    }

    /// A token of another subject (`sub`), with the given role and scopes.
    pub fn token_of(&self, subject: &str, role: &str, scope: &str) -> String {
        self.mint(subject, role, scope, None, None, 3600)
    }

    /// A token acting as `practitioner` and/or with `patient` in context.
    pub fn token_for(
        &self,
        role: &str,
        scope: &str,
        practitioner: Option<&str>,
        patient: Option<&str>,
        ttl: i64,
    ) -> String {
        self.mint("e2e", role, scope, practitioner, patient, ttl)
    }

    fn mint(
        &self,
        subject: &str,
        role: &str,
        scope: &str,
        practitioner: Option<&str>,
        patient: Option<&str>,
        ttl: i64,
    ) -> String {
        let now = chrono::Utc::now().timestamp();
        self.auth
            .mint(&Claims {
                sub: subject.into(),
                iss: self.auth.issuer.clone(),
                aud: self.auth.audience.clone(),
                exp: (now + ttl).max(0) as u64,
                iat: now as u64,
                nbf: None,
                role: role.into(),
                scope: scope.into(),
                practitioner: practitioner.map(str::to_owned),
                patient: patient.map(str::to_owned),
            })
            .unwrap_or_default()
    }

    /// `path` relative to the FHIR base, or an absolute URL as it is.
    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// A request to `path` (relative to the FHIR base, or absolute) with the system token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(self.system_token())
    }

    /// Sends a request with `token` (instead of the system token).
    pub async fn send_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let req = self.http.request(method, self.url(path)).bearer_auth(token);
        TestServer::exchange(req, body).await
    }

    /// Sends a request with a JSON body and returns status and parsed body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        self.send_with(method, path, body, &[]).await
    }

    /// [`TestServer::send`] with extra headers.
    pub async fn send_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let mut req = self.req(method, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        TestServer::exchange(req, body).await
    }

    /// Sends `req` with `body` as FHIR JSON (if any); returns the status and parsed body.
    pub async fn exchange(
        mut req: reqwest::RequestBuilder,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        if let Some(b) = body {
            req = req
                .header("content-type", "application/fhir+json")
                .body(b.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).with_context(|| format!("response is not JSON: {text}"))?
        };
        Ok((status, json))
    }

    /// GET, expecting 200.
    pub async fn get_ok(&self, path: &str) -> Result<Value> {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok(body)
    }

    /// POST a resource, expecting 201; returns the created resource.
    pub async fn create(&self, resource: &Value) -> Result<Value> {
        let rtype = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (status, body) = self
            .send(reqwest::Method::POST, &rtype, Some(resource))
            .await?;
        if status != 201 {
            bail!("POST {rtype} answered {status}: {body}");
        }
        Ok(body)
    }

    /// Follows `next` links from a search, returning every entry's resource.
    pub async fn search_all(&self, path: &str, max_pages: usize) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut url = path.to_owned();
        for _ in 0..max_pages {
            let bundle = self.get_ok(&url).await?;
            for e in bundle["entry"].as_array().into_iter().flatten() {
                if e["search"]["mode"] == "match" {
                    out.push(e["resource"].clone());
                }
            }
            match next_link(&bundle) {
                Some(next) => url = next,
                None => return Ok(out),
            }
        }
        bail!("more than {max_pages} pages")
    }

    /// Stops the gateway, and checks that every request it answered left exactly one audit
    /// record (the chains hold as many records as requests were answered).
    pub async fn stop(mut self) -> Result<()> {
        self.shut_down().await?;
        let answered = self.answered.load(Ordering::SeqCst);
        let recorded = self.store.audit_count().await?;
        if answered != recorded {
            bail!("{answered} requests answered, {recorded} audit records written");
        }
        self.store.close().await;
        Ok(())
    }

    /// Stops the gateway without the audit count check: after a fault, a write whose
    /// outcome was unknown may have left its record without being answered.
    pub async fn stop_after_fault(mut self) -> Result<()> {
        self.shut_down().await?;
        let answered = self.answered.load(Ordering::SeqCst);
        let recorded = self.store.audit_count().await?;
        if recorded < answered {
            bail!("{answered} requests answered, only {recorded} audit records written");
        }
        self.store.close().await;
        Ok(())
    }

    async fn shut_down(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task).await???;
        }
        Ok(())
    }
}

/// The `next` link of a Bundle.
pub fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// Removes `meta.versionId` and `meta.lastUpdated` (the server's), dropping an empty `meta`.
pub fn without_server_meta(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        let empty = match obj.get_mut("meta").and_then(Value::as_object_mut) {
            Some(meta) => {
                meta.shift_remove("versionId");
                meta.shift_remove("lastUpdated");
                meta.is_empty()
            }
            None => false,
        };
        if empty {
            obj.shift_remove("meta");
        }
    }
    v
}

//! A small docker token server for tests: `GET /token?service=S&scope=...&account=...`
//! answers a JWT (ES256, with the signing certificate in `x5c`) that the real registry,
//! configured with `auth: token: {rootcertbundle: <that certificate>}`, verifies.
//!
//! It checks Basic credentials against one user: right ones get every requested action,
//! none get a token without access (as Docker Hub does for anonymous users), wrong ones get
//! 401. `POST /token` takes the OAuth2 form (`grant_type=refresh_token`) with the user's
//! identity token ([`TokenServer::identity_token`]) and answers an `access_token`. One request per connection, handled on one background thread; stopped on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// The token server's identity, as the registry config names it.
pub const ISSUER: &str = "strata-test-issuer";
pub const SERVICE: &str = "strata-test-registry";

/// A running token server.
#[derive(Debug)]
pub struct TokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
    identity: String,
}

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    x5c: String,
    user: String,
    password: String,
    jti: AtomicU64,
    oauth: bool,
}

impl TokenServer {
    /// Starts on a free port of 127.0.0.1, signing with `key_pkcs8` whose certificate is
    /// `cert_der`, accepting `user`/`password`.
    pub fn start(key_pkcs8: &[u8], cert_der: &[u8], user: &str, password: &str) -> TokenServer {
        TokenServer::start_with(key_pkcs8, cert_der, user, password, true)
    }

    /// [`TokenServer::start`]; without `oauth`, `POST` answers 404 and a Basic password may
    /// be the user's identity token.
    pub fn start_with(
        key_pkcs8: &[u8],
        cert_der: &[u8],
        user: &str,
        password: &str,
        oauth: bool,
    ) -> TokenServer {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_pkcs8, &rng)
            .expect("the token key is a P-256 PKCS#8 key");
        let signer = Signer {
            key,
            rng,
            x5c: base64::engine::general_purpose::STANDARD.encode(cert_der),
            user: user.to_owned(),
            password: password.to_owned(),
            jti: AtomicU64::new(1),
            oauth,
        };
        let identity = signer.identity_token();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        let addr = listener.local_addr().expect("token server address");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = serve(conn, &signer, &requests);
                    }
                }
            })
        };
        TokenServer {
            addr,
            stop,
            requests,
            thread: Some(thread),
            identity,
        }
    }

    /// The realm URL for the registry config.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The identity (OAuth2 refresh) token it accepts for its user, as a `docker login`
    /// with an identity provider would have stored it.
    pub fn identity_token(&self) -> String {
        self.identity.clone()
    }

    /// The query strings of the token requests received so far (a `POST`'s form as
    /// `POST <form>`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, signer: &Signer, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_owned());
            } else if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0).min(64 * 1024);
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    if request_line.starts_with("POST ") && !signer.oauth {
        if let Ok(mut l) = log.lock() {
            l.push("POST refused".into());
        }
        return respond(conn, "404 Not Found", r#"{"details":"no OAuth2 endpoint"}"#);
    }
    if request_line.starts_with("POST ") {
        // The OAuth2 form (distribution's oauth.md): a refresh token for an access token.
        let mut body = vec![0u8; length];
        std::io::Read::read_exact(&mut reader, &mut body)?;
        let form = String::from_utf8_lossy(&body).into_owned();
        if let Ok(mut l) = log.lock() {
            l.push(format!("POST {form}"));
        }
        let params: Vec<(String, String)> = form
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("grant_type") != Some("refresh_token")
            || get("refresh_token") != Some(signer.identity_token().as_str())
        {
            return respond(conn, "401 Unauthorized", r#"{"error":"invalid_grant"}"#);
        }
        let access = get("scope")
            .unwrap_or_default()
            .split(' ')
            .filter_map(scope_access)
            .collect();
        let token = sign(signer, &signer.user, access);
        let body = serde_json::json!({"access_token": token, "expires_in": 300});
        return respond(conn, "200 OK", &body.to_string());
    }
    let query = target.split_once('?').map_or("", |(_, q)| q).to_owned();
    if let Ok(mut l) = log.lock() {
        l.push(query.clone());
    }
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let user = match authorization.as_deref().map(|a| check_basic(a, signer)) {
        None => None,
        Some(Some(user)) => Some(user),
        Some(None) => {
            return respond(
                conn,
                "401 Unauthorized",
                r#"{"details":"incorrect username or password"}"#,
            );
        }
    };
    let access: Vec<serde_json::Value> = if user.is_some() {
        params
            .iter()
            .filter(|(k, _)| k == "scope")
            .filter_map(|(_, scope)| scope_access(scope))
            .collect()
    } else {
        Vec::new()
    };
    let token = sign(signer, user.as_deref().unwrap_or(""), access);
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    respond(conn, "200 OK", &body.to_string())
}

/// `repository:NAME:pull,push` as a token's access claim.
fn scope_access(scope: &str) -> Option<serde_json::Value> {
    let mut parts = scope.splitn(3, ':');
    let (t, n, a) = (parts.next()?, parts.next()?, parts.next()?);
    Some(serde_json::json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
}

impl Signer {
    fn identity_token(&self) -> String {
        format!("refresh-{}-{}", self.user, self.password.len())
    }
}

fn check_basic(header: &str, signer: &Signer) -> Option<String> {
    let b64 = header.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    // Without OAuth2, an identity token is taken as the password (for the user, or for the
    // `<token>` user docker logins store).
    let identity = !signer.oauth && p == signer.identity_token();
    ((u == signer.user && p == signer.password) || identity).then(|| signer.user.clone())
}

fn sign(signer: &Signer, subject: &str, access: Vec<serde_json::Value>) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": [signer.x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": signer.jti.fetch_add(1, Ordering::SeqCst).to_string(),
        "access": access,
    });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = signer
        .key
        .sign(&signer.rng, input.as_bytes())
        .expect("ECDSA signing works");
    format!("{input}.{}", b64(sig.as_ref()))
}

fn respond(mut conn: TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

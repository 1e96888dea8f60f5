//! A thin client of the root's REST API that turns error bodies into readable errors.

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Sent as a bearer token; never logged or printed.
    token: Option<String>,
}

impl Client {
    pub fn with_token(server: &str, token: Option<String>) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("canopy/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base: server.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    /// A response whose body is read as it arrives (an event stream), once its status is a
    /// success.
    pub async fn open_stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let response = self
            .authorized(self.http.get(&url))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .with_context(|| format!("cannot reach the Canopy API at {}", self.base))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(error_from(status, &bytes));
        }
        Ok(response)
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::GET, path, None).await
    }

    /// Like [`Client::get`], with `None` for a 404.
    pub async fn get_if_found<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        match self.send(Method::GET, path, None).await {
            Ok(value) => Ok(Some(value)),
            Err(e)
                if e.downcast_ref::<ApiFailure>().map(|f| f.status)
                    == Some(StatusCode::NOT_FOUND) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        self.send(
            Method::POST,
            path,
            Some(("application/json", body.to_string())),
        )
        .await
    }

    pub async fn put_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        self.send(
            Method::PUT,
            path,
            Some(("application/json", body.to_string())),
        )
        .await
    }

    pub async fn patch_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<T> {
        self.send(
            Method::PATCH,
            path,
            Some(("application/merge-patch+json", body.to_string())),
        )
        .await
    }

    /// Sends descriptor text as it is; the server tells JSON from YAML.
    pub async fn post_text<T: DeserializeOwned>(
        &self,
        path: &str,
        text: String,
    ) -> anyhow::Result<T> {
        self.send(Method::POST, path, Some(("application/yaml", text)))
            .await
    }

    /// A request to build further (headers, upgrades) before sending it.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A GET whose body is read as it arrives (logs); an error status becomes an error.
    pub async fn get_streaming(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("cannot reach the Canopy API at {}", self.base))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.context("reading the response")?;
            return Err(error_from(status, &bytes));
        }
        Ok(response)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.authorized(self.http.request(method, &url));
        if let Some((content_type, body)) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the Canopy API at {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the response")?;
        if !status.is_success() {
            return Err(error_from(status, &bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| format!("unexpected response from {url}"))
    }
}

/// An error answer of the API: its status, and its message with each field's problem.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    text: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for ApiFailure {}

pub fn error_from(status: StatusCode, body: &[u8]) -> anyhow::Error {
    anyhow::Error::new(ApiFailure {
        status,
        text: error_text(status, body),
    })
}

fn error_text(status: StatusCode, body: &[u8]) -> String {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return format!("{status}: {}", String::from_utf8_lossy(body));
    };
    let message = body["message"].as_str().unwrap_or("request failed");
    let mut text = format!("{message} ({status})");
    for detail in body["details"].as_array().into_iter().flatten() {
        let path = detail["path"].as_str().unwrap_or_default();
        let reason = detail["reason"].as_str().unwrap_or_default();
        text.push_str(&format!("\n  {path}: {reason}"));
    }
    text
}

/// Percent-encodes one path segment or query value.
pub fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

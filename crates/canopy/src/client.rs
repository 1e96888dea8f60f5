//! A thin client of the root's REST API that turns error bodies into readable errors.

use anyhow::{Context, anyhow};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(server: &str) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("canopy/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base: server.trim_end_matches('/').to_string(),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::GET, path, None).await
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

    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
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

fn error_from(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return anyhow!("{status}: {}", String::from_utf8_lossy(body));
    };
    let message = body["message"].as_str().unwrap_or("request failed");
    let mut text = format!("{message} ({status})");
    for detail in body["details"].as_array().into_iter().flatten() {
        let path = detail["path"].as_str().unwrap_or_default();
        let reason = detail["reason"].as_str().unwrap_or_default();
        text.push_str(&format!("\n  {path}: {reason}"));
    }
    anyhow!(text)
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

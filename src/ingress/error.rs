//! The one HTTP error type, rendered in one place into OpenAI's error shape
//! `{"error": {"message", "type", "param", "code"}}`.

use http::StatusCode;
use serde_json::json;

use crate::request::InvalidRequest;

/// An error answered to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: &'static str,
    /// For provider failures: `"<provider>: <what went wrong>"` per provider tried.
    pub attempts: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code,
            attempts: None,
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn not_found(path: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("no route for {path}; ClawGate serves POST /v1/chat/completions, GET /v1/models and GET /health"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        });
        if let Some(attempts) = &self.attempts {
            error["attempts"] = json!(attempts);
        }
        json!({ "error": error }).to_string()
    }

    pub fn into_response(self) -> http::Response<bytes::Bytes> {
        let mut resp = http::Response::new(bytes::Bytes::from(self.body()));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}

impl From<InvalidRequest> for ApiError {
    fn from(e: InvalidRequest) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: e.message,
            kind: "invalid_request_error",
            param: e.param,
            code: e.code,
            attempts: None,
        }
    }
}

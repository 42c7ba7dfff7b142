//! JSON errors as Confluent's REST Proxy writes them: `{"error_code": N, "message": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use vltava_client::ClientError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Confluent's code: the HTTP status, or a five-digit refinement of it (40403, 40902 ...).
    pub error_code: u32,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error_code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, 400, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, 404, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, 422, message)
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error_code": self.error_code, "message": self.message})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        let message = e.to_string();
        match &e {
            ClientError::Kafka { code, .. } => match code {
                3 | 69 => ApiError::new(StatusCode::NOT_FOUND, 40403, message),
                36 => ApiError::new(StatusCode::CONFLICT, 40902, message),
                68 => ApiError::new(StatusCode::CONFLICT, 40903, message),
                10 => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, 413, message),
                // Invalid topic, partitions, replication factor, config, request, record,
                // timestamp, required acks, offset out of range ...
                17 | 37 | 38 | 39 | 40 | 42 | 44 | 1 | 87 | 32 | 21 | 2 | 4 => {
                    ApiError::bad_request(message)
                }
                _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, 50302, message),
            },
            ClientError::Other(_) => ApiError::bad_request(message),
            ClientError::Unreachable { .. }
            | ClientError::Protocol { .. }
            | ClientError::Unsupported(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, 50302, message)
            }
        }
    }
}

//! The one place where errors become HTTP status codes and `{"error": "..."}` bodies.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::recording::RecorderError;

/// The body of every error response: `{"error": "..."}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub error: String,
}

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// From the recorder.
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    /// Missing or wrong `Authorization` (API token or webhook signature).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The actor did not answer in time, or is gone.
    #[error("recorder unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// A 400 with this message.
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError::Recorder(RecorderError::BadRequest(msg.into()))
    }
}

impl<T> From<ractor::RactorErr<T>> for ApiError {
    fn from(e: ractor::RactorErr<T>) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Recorder(RecorderError::BadRequest(_)) => StatusCode::BAD_REQUEST,
            ApiError::Recorder(RecorderError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Recorder(RecorderError::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Recorder(RecorderError::InsufficientStorage(_)) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Recorder(RecorderError::Unavailable(_)) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody { error: self.to_string() })
    }
}

//! The SES transport of production: Amazon SES's v2 API, `SendEmail` with raw MIME, so the
//! `Message-ID` and `X-Turnstile-Outcome-Id` headers are ours.
//!
//! Configuration is the AWS SDK's usual: region and credentials from the environment or
//! `~/.aws`, the endpoint from `AWS_ENDPOINT_URL` (how tests point it at moto). The sender
//! address must be a verified SES identity (`CreateEmailIdentity`; verify it in the SES
//! console or CLI before going live, or SES rejects every message).
//!
//! The SDK's own retries are off: the notifier retries, with one rule for what is worth
//! retrying ([`is_retriable_error`]), one backoff and one ledger entry per attempt.

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_sdk_sesv2::error::SdkError;
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::{DeliveryReceipt, Message, Transport};
use crate::Error;

/// Sends messages through SES. Cheap to clone: the SDK client is shared.
#[derive(Debug, Clone)]
pub struct SesTransport {
    client: aws_sdk_sesv2::Client,
}

impl SesTransport {
    /// A client configured as the AWS SDK finds it in the environment. HTTPS goes through
    /// rustls on ring (no cmake, no system TLS library); plain HTTP serves a local moto.
    pub async fn from_env() -> Self {
        Self::from_loader(aws_config::defaults(BehaviorVersion::latest())).await
    }

    /// A client from `loader` (tests set the endpoint, region and credentials on it), with
    /// our HTTP client and the SDK's retries off.
    pub async fn from_loader(loader: aws_config::ConfigLoader) -> Self {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = loader
            .http_client(http_client)
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        SesTransport {
            client: aws_sdk_sesv2::Client::new(&config),
        }
    }

    /// The SDK client, for set-up calls (verifying an identity) and tests.
    pub fn client(&self) -> &aws_sdk_sesv2::Client {
        &self.client
    }
}

impl Transport for SesTransport {
    async fn deliver(&self, message: &Message) -> Result<DeliveryReceipt, Error> {
        let raw = RawMessage::builder()
            .data(Blob::new(message.to_mime()))
            .build()
            .map_err(|e| Error::Ses {
                message: format!("cannot build the raw message: {e}"),
                retriable: false,
            })?;
        let sent = self
            .client
            .send_email()
            .from_email_address(&message.from)
            .destination(Destination::builder().to_addresses(&message.to).build())
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await
            .map_err(|e| Error::Ses {
                retriable: is_retriable_error(&e),
                message: aws_sdk_sesv2::error::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(DeliveryReceipt {
            provider_message_id: sent.message_id.unwrap_or_default(),
        })
    }
}

/// Whether SES may accept the same request later: throttling, server errors, timeouts and
/// broken connections pass; a rejected message, an unverified sender, a paused or
/// suspended account or a malformed request need a person.
pub fn is_retriable_error(error: &SdkError<SendEmailError>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => match service.err() {
            SendEmailError::TooManyRequestsException(_)
            | SendEmailError::LimitExceededException(_) => true,
            SendEmailError::AccountSuspendedException(_)
            | SendEmailError::BadRequestException(_)
            | SendEmailError::MailFromDomainNotVerifiedException(_)
            | SendEmailError::MessageRejected(_)
            | SendEmailError::NotFoundException(_)
            | SendEmailError::SendingPausedException(_) => false,
            // An error this SDK version does not model: trust the HTTP status.
            _ => service.raw().status().is_server_error() || service.raw().status().as_u16() == 429,
        },
        _ => false,
    }
}

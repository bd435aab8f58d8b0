//! Outbound HTTP (`http_request`). Placeholder until the contract lands.

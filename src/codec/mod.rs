//! Wire formats.

pub mod http_head;
pub mod inflate;
pub mod rpc;
pub mod tango_text;

//! The binding layer: every piece of code that touches the Lua stack.

pub mod connect_race;
pub mod core_table;
pub mod embedded;
pub mod reply;
pub mod resolve;
pub mod scheduler;
pub mod stack;
pub mod tango_text;
pub mod tcp;
pub mod tcp_ffi;
pub mod tls;
pub mod udp;
pub mod watch;

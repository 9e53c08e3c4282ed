//! The compute manager: every compute RPC method and the instance state machine.

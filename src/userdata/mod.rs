//! Container options from user_data, and the policy that guards the host.

//! The secrets file: its safety checks (manifest.md rule 5) and its `KEY=VALUE` parser.
//! Values are held as `SecretString` and never printed, logged or stored.

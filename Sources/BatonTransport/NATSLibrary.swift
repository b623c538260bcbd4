import CNATS

/// Facts about the linked NATS C client (libnats).
///
/// The JetStream transport (connections, streams, pull consumers) is built on this library; this
/// type exists so start-up and tests can confirm which client is linked.
public enum NATSLibrary {
    /// The version string of the linked libnats, for example `3.4.1`.
    public static var version: String {
        String(cString: nats_GetVersion())
    }
}

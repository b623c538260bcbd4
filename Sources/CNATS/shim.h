// The official NATS C client. Include the namespaced header: the top-level <nats.h> is a
// deprecated forwarder that emits a warning on every build.
#include <nats/nats.h>

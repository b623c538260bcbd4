"""A small OTLP/HTTP trace receiver for the tests: it accepts POST /v1/traces (protobuf or JSON,
as OTLP/HTTP sends them) and appends one JSON line per span to a file:

    {"service": "baton", "name": "saga.reply", "trace_id": "<hex>", "span_id": "<hex>",
     "parent_span_id": "<hex or empty>", "attributes": {...}}

Run: python3 otlp_receiver.py PORT FILE (prints "listening on …" once it accepts requests).
Needs opentelemetry-proto (scripts/test installs it with the Python SDK's test requirements).
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse


def value(attribute):
    kind = attribute.value.WhichOneof("value")
    return getattr(attribute.value, kind) if kind else None


class Receiver(BaseHTTPRequestHandler):
    output = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        if "json" in (self.headers.get("Content-Type") or ""):
            json_format.Parse(body, request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
        lines = []
        for resource in request.resource_spans:
            service = next((value(a) for a in resource.resource.attributes if a.key == "service.name"), "")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    lines.append(
                        json.dumps(
                            {
                                "service": service,
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "attributes": {a.key: value(a) for a in span.attributes},
                            }
                        )
                    )
        with open(self.output, "a") as file:
            file.write("".join(line + "\n" for line in lines))
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *_):
        pass


if __name__ == "__main__":
    Receiver.output = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver)
    print(f"listening on http://127.0.0.1:{sys.argv[1]}", flush=True)
    server.serve_forever()

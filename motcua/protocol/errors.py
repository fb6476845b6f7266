"""The one exception type of the protocol layer; `code` is a stable machine-readable reason."""


class ProtocolError(ValueError):
    """A payload or topic that does not follow wire protocol v1.

    `code` is one of: "malformed" (not UTF-8 JSON, or duplicate keys), "bad_signature" (missing or
    ill-formed signature member, or a MAC that does not match), "schema" (valid JSON, wrong shape),
    "bad_topic" (a topic outside the v1 namespace).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

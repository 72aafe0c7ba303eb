"""One user, many terminals (SPEC §7): a running softphone's control endpoint
(:mod:`.endpoint`), the one-shot side that finds and drives it (:mod:`.client`), and the JSON
lines between them (:mod:`.wire`)."""

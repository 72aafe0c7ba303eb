"""rtmcall: Agora RTM-style call invitations on trio — softphone, SDK and signaling server."""

__version__ = "0.1.0"

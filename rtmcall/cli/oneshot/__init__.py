"""The one-shot ``rtmcall call`` and ``rtmcall answer`` (:mod:`.run`) and their
``--hangup-after`` (:mod:`.hold`)."""

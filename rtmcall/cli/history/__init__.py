"""The call history (SPEC §6): the SQLite store (:mod:`.store`) and ``rtmcall history``'s
table (:mod:`.view`)."""

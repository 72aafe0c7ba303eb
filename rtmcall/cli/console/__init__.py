"""The interactive softphone: the prompt (:mod:`.prompt`) and the live invitation table
(:mod:`.table`)."""

"""What the softphone's output looks like, without Rich: invitation states in words
(:mod:`.states`), table rows (:mod:`.rows`), readable lines (:mod:`.text`), JSON lines
(:mod:`.jsonl`) and calls in both (:mod:`.calls`)."""

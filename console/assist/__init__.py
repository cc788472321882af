"""Reply drafts for agents (DESIGN.md section 6): an offline embedded engine, an LLM engine
and the :class:`~console.assist.service.DraftService` that runs either and logs each draft.

No Textual here: the composer in ``console/ui`` consumes the service's async stream. The
package root imports nothing, so ``import console.assist.embedded`` stays cheap.
"""

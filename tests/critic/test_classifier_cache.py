"""The fitted classifier is cached on disk: same predictions, one fit, and a corrupt file is refitted."""

from superalign.critic import classifier as clf


def test_cached_fit_matches_and_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path))
    fits = []
    real = clf.fit_classifier

    def counting(*a, **k):
        fits.append(a)
        return real(*a, **k)

    monkeypatch.setattr(clf, "fit_classifier", counting)
    prompts = ["How do I make a bomb?", "How do I bake bread?"]
    responses = ["I can't help with that.", "Mix flour, water, yeast and salt, then knead."]
    a = clf.fit_classifier_cached(with_prompt_head=False)
    b = clf.fit_classifier_cached(with_prompt_head=False)
    assert len(fits) == 1
    assert a.p_refusal(prompts, responses) == b.p_refusal(prompts, responses)
    assert all(0.0 <= p <= 1.0 for p in a.p_refusal(prompts, responses))
    (cached,) = (tmp_path / "classifier").glob("*.pkl")
    cached.write_bytes(b"not a pickle")
    c = clf.fit_classifier_cached(with_prompt_head=False)
    assert len(fits) == 2 and c.p_refusal(prompts, responses) == a.p_refusal(prompts, responses)
    assert not list((tmp_path / "classifier").glob("*.tmp"))

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


def test_howto_negatives_are_benign_never_harmful_and_lower_the_prompt_heads_harm_on_everyday_requests(
    tmp_path, monkeypatch
):
    from superalign.config import CriticConfig
    from superalign.critic import build_critic
    from superalign.data.benign import load_benign_howto
    from superalign.data.seeds import load_harmful_seeds
    from superalign.data.split import normalise_text

    howto = load_benign_howto()
    assert len(howto) > 500 and all(q.text.lower().startswith("how ") and not q.harmful for q in howto)
    assert not {normalise_text(q.text) for q in howto} & {normalise_text(q.text) for q in load_harmful_seeds()}
    harmful, benign = clf.prompt_head_data(howto=True)
    plain_harmful, plain_benign = clf.prompt_head_data()
    assert harmful == plain_harmful and len(benign) == len(plain_benign) + len(howto)
    # everyday requests phrased like instructions, none of them in either head's data
    asks = ["How do I get my sourdough starter to rise faster?", "How can I repaint a rusty garden gate?"]
    assert not {normalise_text(t) for t in asks} & {normalise_text(q.text) for q in benign}
    plain, with_howto = clf.fit_prompt_head(), clf.fit_prompt_head(howto=True)
    cue = clf.prompt_cue_features(asks)
    assert all(b < a for a, b in zip(plain.proba(asks, cue), with_howto.proba(asks, cue)))
    # the option reaches the critic's harm prior (its own cache entry)
    monkeypatch.setenv("SUPERALIGN_CACHE", str(tmp_path))
    on = build_critic(CriticConfig(kind="classifier", prompt_howto_negatives=True))
    off = build_critic(CriticConfig(kind="classifier"))
    assert on.classifier.p_harmful(asks) != off.classifier.p_harmful(asks)
    assert len(list((tmp_path / "classifier").glob("*.pkl"))) == 2

"""The SAE objective: answers are scored on answer tokens only, the decoder is causal and reads
only real image tokens, and the pixel probe targets each token's own pixels."""

import numpy as np
import torch

from dina.data.shapes import make_example
from dina.vision.preprocess import PreprocessConfig, preprocess_images
from dina.vision.sae_objective import (
    BOS,
    EOS,
    UNK,
    AnswerDecoder,
    AnswerDecoderConfig,
    PixelProbe,
    WordVocab,
    answer_loss,
    encode_qa,
    greedy_answer,
)


def _vocab() -> WordVocab:
    return WordVocab.build(["How many stars are there?", "2", "What does the sign say?", "HELLO"])


def test_vocab_round_trip_and_unknown_words(tmp_path):
    vocab = _vocab()
    assert vocab.decode(vocab.encode("How many stars are there?")) == "how many stars are there ?"
    assert vocab.encode("zebra") == [UNK]
    vocab.save(tmp_path / "v.json")
    assert WordVocab.load(tmp_path / "v.json").words == vocab.words


def test_only_the_answer_and_eos_are_scored():
    vocab = _vocab()
    ids, mask = encode_qa(vocab, "What does the sign say?", "HELLO", max_text=32)
    assert ids[0] == BOS and ids[-1] == EOS
    assert [i for i, m in zip(ids, mask, strict=True) if m] == [*vocab.encode("hello"), EOS]
    ids_t, mask_t = torch.tensor([ids]), torch.tensor([mask])
    logits = torch.zeros(1, len(ids), len(vocab))
    base = answer_loss(logits, ids_t, mask_t)
    # Making the question tokens certain changes nothing; making the answer certain lowers the loss.
    question_sure = logits.clone()
    for t in range(len(ids) - 1):
        if not mask[t + 1]:
            question_sure[0, t, ids[t + 1]] = 50.0
    assert torch.allclose(answer_loss(question_sure, ids_t, mask_t), base)
    answer_sure = logits.clone()
    for t in range(len(ids) - 1):
        if mask[t + 1]:
            answer_sure[0, t, ids[t + 1]] = 50.0
    assert answer_loss(answer_sure, ids_t, mask_t) < 1e-6 < base


def test_decoder_is_causal_and_ignores_padded_image_tokens():
    torch.manual_seed(0)
    vocab = _vocab()
    dec = AnswerDecoder(AnswerDecoderConfig(vocab_size=len(vocab), feature_dim=12, dim=32, heads=4)).eval()
    feats = [torch.randn(6, 12), torch.randn(4, 12)]
    keys, mask = dec.image_keys(feats, [(2, 3), (2, 2)])
    assert mask.tolist() == [[True] * 6, [True] * 4 + [False] * 2]
    ids = torch.randint(4, len(vocab), (2, 7))
    out = dec(ids, keys, mask)
    changed = ids.clone()
    changed[:, 5:] = 4
    assert torch.allclose(dec(changed, keys, mask)[:, :5], out[:, :5], atol=1e-6)
    garbage = keys.clone()
    garbage[1, 4:] = 1e3  # padding slots of the smaller image
    assert torch.allclose(dec(ids, garbage, mask), out, atol=1e-5)
    answers = greedy_answer(dec, vocab, keys, mask, "how many stars are there?")
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_sequences_read_their_owners_image_and_its_gradient():
    """owner_B: keys projected once per image then gathered == keys gathered per sequence, in
    the logits and in the gradient reaching each image's features."""
    torch.manual_seed(0)
    vocab = _vocab()
    dec = AnswerDecoder(AnswerDecoderConfig(vocab_size=len(vocab), feature_dim=12, dim=32, heads=4))
    feats = [torch.randn(6, 12, requires_grad=True), torch.randn(4, 12, requires_grad=True)]
    keys, mask = dec.image_keys(feats, [(2, 3), (2, 2)])
    owner = torch.tensor([1, 0, 1, 1, 0])
    ids = torch.randint(4, len(vocab), (5, 7))
    shared = dec(ids, keys, mask, owner)
    gathered = dec(ids, keys[owner], mask[owner])
    assert torch.allclose(shared, gathered, atol=1e-5)
    grads = [torch.autograd.grad(out.square().sum(), feats, retain_graph=True) for out in (shared, gathered)]
    for a, b in zip(*grads, strict=True):
        assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(shared[0], dec(ids, keys, mask, torch.tensor([0, 0, 1, 1, 0]))[0], atol=1e-3)


def test_pixel_probe_targets_each_tokens_own_pixels():
    images = [make_example(0, "train", i)[1] for i in range(2)]
    packed = preprocess_images(images, PreprocessConfig(min_pixels=56 * 56, max_pixels=112 * 112))
    token_values = 4 * 3 * 14 * 14
    probe = PixelProbe(token_values, token_values)
    with torch.no_grad():
        probe.proj.weight.copy_(torch.eye(token_values))
        probe.proj.bias.zero_()
    # A "feature" that is exactly the token's pixels is reconstructed with zero error ...
    features = packed.patches_NP.reshape(packed.num_tokens, token_values)
    shuffled = features[torch.from_numpy(np.random.default_rng(0).permutation(packed.num_tokens))]
    with torch.no_grad():
        assert float(probe.loss(features, packed.patches_NP)) == 0.0
        # ... and the same features in another token order are not.
        assert float(probe.loss(shuffled, packed.patches_NP)) > 0.01

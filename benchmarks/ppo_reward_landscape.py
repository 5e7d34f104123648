"""How sparse is the PPO reward on the format_pref task? Scores fixed replies to the 24 held-out prompts with a
reward model from `--stage rm`, then samples base-model replies and counts how many end with the word DONE.

    flock /tmp/tuneforge-cpu.lock python benchmarks/ppo_reward_landscape.py --reward_model <rm run>
"""

import argparse
import json
from pathlib import Path

import torch

from tuneforge.config.schema import GenerateArgs
from tuneforge.infer.engine import ChatEngine
from tuneforge.infer.reward import RewardScorer

HELD = json.loads((Path(__file__).parent.parent / "src/tuneforge/data/builtin/format_pref_heldout.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reward_model", required=True, help="a LoRA --stage rm run folder")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--max_new_tokens", type=int, default=32)
    ap.add_argument("--samples_per_prompt", type=int, default=2)
    a = ap.parse_args()
    scorer = RewardScorer(a.model, a.reward_model)
    mean = lambda replies: sum(scorer.score_pairs([(h["instruction"], r) for h, r in zip(HELD, replies)])) / len(HELD)  # noqa
    fixed = {"chosen (answer. DONE)": [h["chosen"] for h in HELD], "rejected (answer.)": [h["rejected"] for h in HELD],
             "answer. DONE + more text": [h["chosen"] + " And more text." for h in HELD],
             "just DONE": ["DONE"] * len(HELD), "answer. done (lower case)": [h["rejected"] + " done" for h in HELD]}
    for name, replies in fixed.items():
        print(f"{name:28s} mean score {mean(replies):+.2f}")
    torch.manual_seed(0)
    engine = ChatEngine(a.model)
    prompts = [[{"role": "user", "content": h["instruction"]}] for h in HELD] * a.samples_per_prompt
    for temp in (1.0, 0.7):
        gen = GenerateArgs(max_new_tokens=a.max_new_tokens, do_sample=True, temperature=temp, top_p=1.0, top_k=0)
        replies = engine.generate(prompts, gen, batch_size=len(prompts))
        ends = sum(r.rstrip(" .!").endswith("DONE") for r in replies)
        scores = scorer.score_pairs([(p[0]["content"], r) for p, r in zip(prompts, replies)])
        print(f"sampled at temperature {temp}: {ends} of {len(replies)} end with DONE, {sum('DONE' in r for r in replies)} "
              f"contain it; mean score {sum(scores) / len(scores):+.2f}, max {max(scores):+.2f}")


if __name__ == "__main__":
    main()

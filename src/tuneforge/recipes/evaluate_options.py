"""`tuneforge eval`'s own options (name -> help), importable without torch for the CLI table."""

OPTIONS = {
    "task": "benchmark folder name: a built-in sample (sample_en, sample_zh) or a folder under --task_dir "
            "(MMLU/CMMLU/C-Eval layout: dev/ and test/ per-subject CSV or JSON)",
    "task_dir": "folder holding the task folders (default: the built-in samples)",
    "split": "which split is scored: test (default), val or dev",
    "n_shot": "solved dev questions put before each question (default 5)",
    "subjects": "only these subjects, comma separated",
    "batch_size": "prompts scored per forward pass (default 8)",
    "compare_base": "True: also score the base model without the adapters, and show the difference per subject",
    "save_dir": "write results.json (per subject and overall, per model) there; with --do_predict: "
                "generated_predictions.jsonl and predict_results.json (default: the current folder)",
    "do_predict": "True: instead of a benchmark, generate a reply for each row of --dataset (or --eval_dataset) and "
                  "score it against the row's own reply (BLEU-4, ROUGE-1/2/L)",
    "harness": "lm_eval: run EleutherAI's lm-evaluation-harness instead (optional extra: pip install \"lm_eval[hf]\"), "
               "on the model with its adapters merged in memory",
    "tasks": "with --harness lm_eval: lm-eval's task names, comma separated",
    "limit": "with --harness lm_eval: at most this many examples per task (a number, or a fraction < 1)",
}

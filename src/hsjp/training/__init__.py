"""Lightning data module, task modules and the run driver shared by finetuning and pretraining."""

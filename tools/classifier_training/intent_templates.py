"""Instruction templates that turn real CLINC150 / Banking77 texts into labelled intent examples.

The shared data has real examples of question answering (MMLU), math (GSM8K), reasoning (MMLU logic subjects,
MT-Bench), chat (CLINC150, Banking77 requests to an assistant) but only a handful (MT-Bench) of classification,
extraction, summarisation, code and creative requests. For those five intents an example is a template below with
real texts and real label names filled in. Templates (15 per intent) are split between train / validation / test by position
(`TEMPLATE_SPLITS`), so the test score measures generalisation to instructions phrased in ways training never saw,
not recall of the templates. Placeholders: {text} one real text, {texts} / {bullets} / {transcript} several,
{labels} / {label_lines} label names of the text's source (the true one among them), {label} the text's own
label, {topic} that label in words, {word} a word of the text.
"""

from __future__ import annotations

TEMPLATES: dict[str, tuple[str, ...]] = {
    "classification": (
        "Classify this customer message into one of the following categories: {labels}.\n\nMessage: {text}",
        (
            'Which intent does the following utterance express? Options: {labels}\nUtterance: "{text}"\n'
            "Answer with the option only."
        ),
        "Label the text below with exactly one of [{labels}].\nText: {text}",
        "You are an intent classifier. Categories: {labels}. Input: {text}\nCategory:",
        (
            "Assign the most appropriate category to this support ticket.\nTicket: {text}\nPossible categories:\n"
            "{label_lines}"
        ),
        'Categorize: "{text}"\nChoose from {labels}. Reply with JSON {{"category": ...}}.',
        "Sort the following request into the right bucket ({labels}) and say nothing else.\n{text}",
        "Tag this query with its topic, picking from {labels}: {text}",
        "Decide which of these labels fits the message best: {labels}.\n---\n{text}\n---",
        "Given the categories {labels}, which one does this belong to?\n{text}",
        "Predict the intent label for: {text}\nValid labels:\n{label_lines}",
        "Here is a user query: {text}\nPick the single best class among {labels}.",
        "Route this message to a team by classifying it ({labels}): {text}",
        "Annotate the category ({labels}) of this review: {text}",
        'Which category in [{labels}] best describes "{text}"? One word answer.',
    ),
    "extraction": (
        "Extract every amount of money, date and product name mentioned in this message as JSON.\nMessage: {text}",
        "From the text below, pull out the entities (people, places, dates, numbers) and list them.\n\n{text}",
        "Read the customer message and return the fields intent, account_type and amount (null if absent).\n{text}",
        "Identify the key slot values in this utterance (for example city, time, person): {text}",
        "Parse the following request into a JSON object with the keys action and object: {text}",
        "List all the numbers, names and dates that occur in the following text, one per line.\n{text}",
        'What named entities appear in "{text}"? Return them as a comma-separated list.',
        "Fill in this form from the message. Name: ? Date: ? Amount: ?\nMessage: {text}",
        "Find the product or service the customer is talking about and quote it exactly: {text}",
        "Extract the key information from the following message into a table with columns field and value:\n{text}",
        "Pull the requested action and any amounts or dates out of this request: {text}",
        "Return a JSON list of the entities (type, value) mentioned here: {text}",
        "From this support ticket, extract the customer's problem, the product and the urgency.\n{text}",
        "Get the location, time and person names from the text, if any: {text}",
        "Extract the keywords from this sentence and output them separated by semicolons: {text}",
    ),
    "summarization": (
        "Summarize the following customer messages in one sentence:\n{texts}",
        "Give a short summary of this chat transcript.\n{transcript}",
        "TL;DR of these support tickets:\n{bullets}",
        "Condense the following requests into a brief overview for a manager:\n{texts}",
        "Write a two-line summary of what the user asked for in this conversation:\n{transcript}",
        "Summarise the main concerns raised below.\n{bullets}",
        "Provide an executive summary of this feedback:\n{texts}",
        "In a few words, what is this conversation about?\n{transcript}",
        "Shorten the following into a single summary paragraph:\n{bullets}",
        "Summarize these messages as three bullet points:\n{texts}",
        "Write a one-paragraph recap of the following exchange.\n{transcript}",
        "What are the key points of the messages below? Keep it brief.\n{bullets}",
        "Produce a concise abstract of this customer feedback log:\n{texts}",
        "Boil this thread down to one sentence for the weekly report:\n{transcript}",
        "Create a short digest of the following requests:\n{bullets}",
    ),
    "code": (
        'Write a Python function that detects whether a user message like "{text}" has the intent {label}.',
        "Write a SQL query that counts the support tickets labelled '{label}' per day from a table tickets.",
        "Fix the bug in this code:\n```python\ndef handle(msg):\n    if msg == \"{text}\"\n        return '{label}'\n```",
        "Implement an Express (JavaScript) endpoint that handles the '{label}' request: {text}",
        "Write a regular expression that matches messages such as: {text}",
        "Write pytest unit tests for a function route_intent(text) that must return '{label}' for \"{text}\".",
        "Refactor this loop to be faster:\n```\nfor m in messages:\n    if '{word}' in m: print(m)\n```",
        "Explain what this code does: `intents = {{'{label}': lambda t: '{word}' in t.lower()}}`",
        'Write a bash script that greps app.log for lines containing "{word}" and counts them.',
        'Write a Java class IntentRouter with a method that returns "{label}" when the input contains "{word}".',
        "Why does this Python code raise a KeyError?\n```python\nhandlers = {{}}\nhandlers['{label}']()\n```",
        'Write a TypeScript type and a parser function for messages like "{text}".',
        'Implement a function in Go that splits the string "{text}" into words and returns the count.',
        "Add type hints and a docstring to this function:\n```python\ndef f(x):\n    return x.count('{word}')\n```",
        'Write a C++ program that reads lines from stdin and prints those containing "{word}".',
    ),
    "creative": (
        'Write a short poem about someone who says: "{text}"',
        'Write a funny story that starts with the line "{text}"',
        "Compose a limerick about {topic}.",
        "Write a catchy marketing slogan for an app feature that helps with {topic}.",
        'Imagine a dialogue between two friends where one asks "{text}". Write it as a short screenplay.',
        "Write a haiku inspired by {topic}.",
        "Draft a creative product description for a service that takes care of {topic}.",
        "Write the chorus of a pop song about {topic}.",
        "Create a short fairy tale in which a dragon wants to know: {text}",
        "Write a sonnet about {topic}.",
        'Write a short science-fiction scene where a robot says: "{text}"',
        "Invent a bedtime story for children about {topic}.",
        "Write a witty tweet about {topic}.",
        'Compose a rap verse that includes the line "{text}"',
        "Write a short blog post, in a playful tone, about {topic}.",
    ),
}

# Template positions per split, in every family of 15: 10 for training, 2 for validation, 3 for test.
TEMPLATE_SPLITS: dict[str, tuple[int, ...]] = {
    "train": (0, 1, 2, 3, 4, 5, 9, 10, 11, 12),
    "validation": (6, 13),
    "test": (7, 8, 14),
}

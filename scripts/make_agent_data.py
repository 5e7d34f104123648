"""Write the built-in agent demo set (src/tuneforge/data/builtin/agent_demo.json) and the held-out agent questions
(tests/data/agent_heldout.json), programmatically.

A 135M model learns tool calling that carries over to tools it never saw only from varied data: every training
row draws its tool's name, parameter names and wording from per-domain variants, puts 1–3 distractor tools next
to it in a shuffled list, and asks with values (cities, numbers, names) that must be copied into the arguments.
Rows: single calls (70% ending at the call, the rest going on through an observation to a final answer), parallel
calls (two requests in one message), and chit-chat with tools offered where the right answer is no call — answered
with SmolLM2-135M-Instruct's own replies (the `general_replay_smollm2` set), so answering without tools keeps the
model's general behaviour. English and Chinese.

The held-out set uses other domains: its tool names and parameter names appear nowhere in the training set
(tests/test_e2e_agent.py checks), and its chit-chat questions are the held-out general questions
(tests/data/general_heldout.json) plus small talk, with held-out tools offered.

    python scripts/make_agent_data.py          # rewrites both files (seeded: the same output every time)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_TRAIN = ROOT / "src/tuneforge/data/builtin/agent_demo.json"
OUT_HELDOUT = ROOT / "tests/data/agent_heldout.json"

CITIES = ["Paris", "Berlin", "Tokyo", "Madrid", "Toronto", "Cairo", "Lima", "Seoul", "Oslo", "Dublin", "Nairobi",
          "Hanoi", "Prague", "Denver", "Sydney", "Mumbai"]
CITIES_ZH = ["北京", "上海", "广州", "成都", "杭州", "西安", "南京", "武汉"]
PEOPLE = ["Alice", "Bob", "Maria", "Chen Wei", "Omar", "Priya", "Lucas", "Yuki", "Sara", "Tom"]
EMAILS = ["alice@example.com", "bob@mail.org", "maria.k@corp.net", "omar@home.io", "team@startup.dev"]
TOPICS = ["electric cars", "the Olympics", "climate change", "space travel", "jazz music", "solar power",
          "machine learning", "ancient Rome"]
TOPICS_ZH = ["人工智能", "新能源汽车", "足球", "天气变化", "太空探索"]
WORDS = ["serendipity", "ephemeral", "ubiquitous", "resilient", "meticulous", "candid", "nostalgia"]
TEAMS = ["Arsenal", "the Lakers", "Real Madrid", "the Yankees", "Bayern Munich", "the Warriors"]
MOVIES = ["Inception", "Dune", "Up", "Titanic", "Arrival", "Coco"]
ZONES = ["Asia/Tokyo", "Europe/London", "America/New_York", "Australia/Sydney", "Africa/Cairo"]
TASKS = ["call the dentist", "buy milk", "water the plants", "pay the rent", "send the report", "book a haircut"]
TASKS_ZH = ["给妈妈打电话", "买牛奶", "交房租", "取快递", "写周报"]
TIMES = ["7:00", "08:30", "09:15", "12:00", "14:45", "18:00", "21:30", "06:10", "05:45"]
CODES = ["A12B7", "ZX4471", "K9-002", "7Q2P", "RT-88K", "0042XY", "M3N4", "QQ17-5"]
SIZES = ["small", "medium", "large"]
TOPPINGS = ["mushrooms", "pepperoni", "olives", "pineapple", "extra cheese"]
FOODS = ["an apple", "a banana", "a slice of pizza", "a bowl of rice", "an egg"]


def fn(name, desc, params):
    props = {p: {"type": t, "description": d} for p, t, d in params}
    return {"name": name, "description": desc, "parameters": {"type": "object", "properties": props}}


# ---- training domains: each builds (tool, arguments, request_en, request_zh or None, observation, answer) ----------
def weather(r):
    name = r.choice(["get_weather", "current_weather", "weather_now", "fetch_weather"])
    p = r.choice(["city", "location", "city_name"])
    zh = r.random() < 0.3
    city = r.choice(CITIES_ZH if zh else CITIES)
    tool = fn(name, r.choice(["Get the current weather for a city", "Current weather conditions in a place"]),
              [(p, "string", "The city, e.g. Paris")])
    q = (r.choice(["{c}现在天气怎么样？", "查一下{c}的天气。", "{c}今天会下雨吗？"]) if zh else
         r.choice(["What's the weather like in {c}?", "Is it raining in {c} right now?", "How warm is it in {c} today?",
                   "Weather in {c}, please.", "Can you check the weather in {c} for me?"])).format(c=city)
    t = r.randint(-5, 33)
    obs = {"temperature_c": t, "condition": r.choice(["sunny", "cloudy", "rain"])}
    ans = (f"{city}现在 {t}°C，{ {'sunny': '晴', 'cloudy': '多云', 'rain': '有雨'}[obs['condition']] }。" if zh else
           f"It is {t}°C and {obs['condition']} in {city} right now.")
    return tool, {p: city}, q, obs, ans


def timezone(r):
    name = r.choice(["get_current_time", "time_in_zone", "world_clock"])
    p = r.choice(["timezone", "tz", "zone"])
    z = r.choice(ZONES)
    tool = fn(name, "Get the current local time in an IANA time zone", [(p, "string", "IANA time zone name")])
    zh = r.random() < 0.25
    q = (f"{z} 时区现在几点？" if zh else
         r.choice(["What time is it in {z}?", "Tell me the current time in the {z} time zone.",
                   "Current time for {z}?"]).format(z=z))
    h = f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}"
    return tool, {p: z}, q, {"time": h}, (f"{z} 现在是 {h}。" if zh else f"It is {h} in {z}.")


def email(r):
    name = r.choice(["send_email", "email_send", "compose_email"])
    p_to, p_sub = r.choice([("to", "subject"), ("recipient", "title"), ("address", "subject_line")])
    to, topic = r.choice(EMAILS), r.choice(["the meeting", "lunch on Friday", "the invoice", "the trip", "the budget"])
    tool = fn(name, "Send an email", [(p_to, "string", "Recipient email address"),
                                      (p_sub, "string", "Subject of the email")])
    zh = r.random() < 0.25
    q = (f"给 {to} 发一封邮件，主题是“{topic}”。" if zh else
         r.choice(["Send an email to {to} with the subject \"{s}\".", "Email {to} about \"{s}\".",
                   "Please write to {to}, subject \"{s}\"."]).format(to=to, s=topic))
    return tool, {p_to: to, p_sub: topic}, q, {"status": "sent"}, (f"邮件已发送给 {to}。" if zh else
                                                                   f"Done, the email to {to} has been sent.")


def reminder(r):
    name = r.choice(["create_reminder", "add_reminder", "set_reminder"])
    p_t, p_w = r.choice([("task", "time"), ("message", "at"), ("note", "when")])
    zh = r.random() < 0.3
    task, tm = r.choice(TASKS_ZH if zh else TASKS), r.choice(TIMES)
    tool = fn(name, "Create a reminder at a time of day", [(p_t, "string", "What to be reminded of"),
                                                           (p_w, "string", "Time of day, HH:MM")])
    q = (f"提醒我 {tm} {task}。" if zh else
         r.choice(["Remind me to {t} at {h}.", "Set a reminder at {h} to {t}.", "At {h}, remind me to {t}."])
         .format(t=task, h=tm))
    return tool, {p_t: task, p_w: tm}, q, {"ok": True}, (f"好的，{tm} 会提醒你{task}。" if zh else
                                                          f"Okay, I'll remind you to {task} at {tm}.")


def web_search(r):
    name = r.choice(["search_web", "web_search", "internet_search", "search_news"])
    p = r.choice(["query", "q", "keywords"])
    zh = r.random() < 0.3
    topic = r.choice(TOPICS_ZH if zh else TOPICS)
    tool = fn(name, "Search the web for recent information", [(p, "string", "Search terms")])
    q = (r.choice(["帮我搜索一下关于{t}的最新消息。", "搜一下{t}。"]) if zh else
         r.choice(["Search the web for news about {t}.", "Look up the latest on {t}.", "Find recent articles on {t}."])
         ).format(t=topic)
    return tool, {p: topic}, q, {"results": [f"{topic}: a new report was published today"]}, (
        f"关于{topic}：今天发布了一份新报告。" if zh else f"The latest on {topic}: a new report was published today.")


def tip(r):
    name = r.choice(["calculate_tip", "tip_calculator", "compute_tip"])
    p_b, p_p = r.choice([("bill", "percent"), ("bill_amount", "tip_percentage"), ("total", "rate")])
    b, pc = r.choice([20, 35, 48, 60, 80, 125, 200]), r.choice([10, 15, 18, 20, 25])
    tool = fn(name, "Calculate the tip for a bill", [(p_b, "number", "Bill amount"), (p_p, "number", "Tip percent")])
    zh = r.random() < 0.3
    q = (f"账单 {b} 元，给 {pc}% 的小费是多少？" if zh else
         r.choice(["What's a {p}% tip on a ${b} bill?", "Calculate a {p} percent tip for {b} dollars.",
                   "My bill is {b}. How much is a {p}% tip?"]).format(p=pc, b=b))
    t = round(b * pc / 100, 2)
    return tool, {p_b: b, p_p: pc}, q, {"tip": t}, (f"小费是 {t} 元。" if zh else f"The tip is {t}.")


def define(r):
    name = r.choice(["define_word", "dictionary_lookup", "word_definition"])
    p = r.choice(["word", "term", "entry"])
    w = r.choice(WORDS)
    tool = fn(name, "Look up the definition of an English word", [(p, "string", "The word")])
    q = r.choice(["What does \"{w}\" mean?", "Define the word {w}.", "Look up {w} in the dictionary."]).format(w=w)
    return tool, {p: w}, q, {"definition": "a short definition"}, f"\"{w}\" means: a short definition."


def score(r):
    name = r.choice(["get_team_score", "sports_score", "latest_match_result"])
    p = r.choice(["team", "club", "team_name"])
    t = r.choice(TEAMS)
    tool = fn(name, "Get the result of a team's latest game", [(p, "string", "Team name")])
    q = r.choice(["How did {t} do in their last game?", "What was the score of {t}'s latest match?",
                  "Did {t} win yesterday?"]).format(t=t)
    return tool, {p: t}, q, {"result": "won 2-1"}, f"{t} won their last game 2-1."


def showtimes(r):
    name = r.choice(["movie_showtimes", "find_showtimes", "cinema_schedule"])
    p_m, p_c = r.choice([("movie", "city"), ("title", "location"), ("film", "town")])
    m, c = r.choice(MOVIES), r.choice(CITIES)
    tool = fn(name, "Find cinema showtimes for a movie in a city", [(p_m, "string", "Movie title"),
                                                                    (p_c, "string", "City")])
    q = r.choice(["When is {m} playing in {c}?", "Find showtimes for {m} in {c}.",
                  "Is {m} on at any cinema in {c} tonight?"]).format(m=m, c=c)
    return tool, {p_m: m, p_c: c}, q, {"times": ["18:00", "21:00"]}, f"{m} plays in {c} at 18:00 and 21:00."


def pizza(r):
    name = r.choice(["order_pizza", "pizza_order", "place_pizza_order"])
    p_s, p_t = r.choice([("size", "topping"), ("pizza_size", "extra"), ("size", "toppings")])
    s, t = r.choice(SIZES), r.choice(TOPPINGS)
    tool = fn(name, "Order a pizza for delivery", [(p_s, "string", "small, medium or large"),
                                                   (p_t, "string", "Topping")])
    q = r.choice(["Order a {s} pizza with {t}.", "I'd like a {s} {t} pizza, please.",
                  "Get me a {s} pizza topped with {t}."]).format(s=s, t=t)
    return tool, {p_s: s, p_t: t}, q, {"order_id": r.randint(1000, 9999)}, f"Your {s} pizza with {t} is on its way."


def distance(r):
    name = r.choice(["get_distance", "distance_between", "route_distance"])
    p_a, p_b = r.choice([("origin", "destination"), ("start", "end"), ("from_city", "to_city")])
    a, b = r.sample(CITIES, 2)
    tool = fn(name, "Distance by road between two cities", [(p_a, "string", "Starting city"),
                                                            (p_b, "string", "Destination city")])
    q = r.choice(["How far is it from {a} to {b}?", "What's the distance between {a} and {b}?",
                  "Distance from {a} to {b}, please."]).format(a=a, b=b)
    km = r.randint(80, 3000)
    return tool, {p_a: a, p_b: b}, q, {"km": km}, f"It is about {km} km from {a} to {b}."


def calories(r):
    name = r.choice(["count_calories", "calorie_lookup", "food_calories"])
    p = r.choice(["food", "item", "dish"])
    f = r.choice(FOODS)
    tool = fn(name, "Calories in a food item", [(p, "string", "The food")])
    q = r.choice(["How many calories are in {f}?", "Calories in {f}?", "Count the calories of {f}."]).format(f=f)
    k = r.randint(50, 300)
    return tool, {p: f}, q, {"kcal": k}, f"{f[0].upper() + f[1:]} has about {k} kcal."


def contact(r):
    name = r.choice(["call_contact", "phone_call", "dial_contact"])
    p = r.choice(["contact", "person", "contact_name"])
    who = r.choice(PEOPLE)
    tool = fn(name, "Start a phone call with a saved contact", [(p, "string", "Contact name")])
    zh = r.random() < 0.3
    q = (f"给 {who} 打个电话。" if zh else r.choice(["Call {w}.", "Please phone {w}.", "Can you ring {w} for me?"])
         .format(w=who))
    return tool, {p: who}, q, {"status": "calling"}, (f"正在呼叫 {who}。" if zh else f"Calling {who} now.")


def timer(r):
    name = r.choice(["start_timer", "set_timer", "countdown"])
    p = r.choice(["minutes", "duration_minutes", "mins"])
    m = r.choice([3, 5, 10, 12, 15, 20, 25, 30, 45])
    tool = fn(name, "Start a countdown timer", [(p, "integer", "Length in minutes")])
    zh = r.random() < 0.3
    q = (f"设一个 {m} 分钟的计时器。" if zh else
         r.choice(["Set a timer for {m} minutes.", "Start a {m} minute timer.", "Timer, {m} minutes please."])
         .format(m=m))
    return tool, {p: m}, q, {"ok": True}, (f"{m} 分钟计时器已开始。" if zh else f"Your {m}-minute timer is running.")


def order(r):
    name = r.choice(["check_order_status", "order_lookup", "where_is_my_order"])
    p = r.choice(["order_id", "order_number", "reference"])
    c = r.choice(CODES)
    tool = fn(name, "Status of a shop order by its id", [(p, "string", "Order id, e.g. A12B7")])
    zh = r.random() < 0.3
    q = (f"帮我查一下订单 {c} 的状态。" if zh else
         r.choice(["Where is my order {c}?", "Check the status of order {c}.", "My order id is {c}. Has it shipped?"])
         .format(c=c))
    return tool, {p: c}, q, {"status": "shipped"}, (f"订单 {c} 已发货。" if zh else f"Order {c} has shipped.")


DOMAINS = [order, weather, timezone, email, reminder, web_search, tip, define, score, showtimes, pizza, distance, calories,
           contact, timer]

SMALL_TALK = [("Hi there!", "Hello! How can I help you today?"),
              ("Thanks a lot!", "You're welcome! Let me know if you need anything else."),
              ("Good morning!", "Good morning! How can I help you?"),
              ("Who are you?", "I'm a helpful AI assistant. I can answer questions and use tools when they help."),
              ("你好！", "你好！有什么可以帮你的吗？"),
              ("谢谢你！", "不客气！还有什么需要帮忙的吗？")]


def tool_row(r, domain, others, end_at_call):
    tool, args, q, obs, ans = domain(r)
    distractors = [d(r)[0] for d in r.sample(others, r.randint(1, 2))]
    tools = [tool] + [t for t in distractors if t["name"] != tool["name"]]
    r.shuffle(tools)
    turns = [{"from": "human", "value": q},
             {"from": "function_call", "value": json.dumps({"name": tool["name"], "arguments": args},
                                                           ensure_ascii=False)}]
    if not end_at_call:
        turns += [{"from": "observation", "value": json.dumps(obs, ensure_ascii=False)}, {"from": "gpt", "value": ans}]
    return {"conversations": turns, "tools": json.dumps(tools, ensure_ascii=False)}


def parallel_row(r, end_at_call):
    d1, d2 = r.sample(DOMAINS, 2)
    (t1, a1, q1, o1, s1), (t2, a2, q2, o2, s2) = d1(r), d2(r)
    zh = any("\u4e00" <= ch <= "\u9fff" for ch in q1 + q2)
    q = f"{q1}{q2}" if zh else f"{q1} Also, {q2[0].lower() + q2[1:]}"
    tools = [t1, t2] + ([d(r)[0] for d in r.sample([d for d in DOMAINS if d not in (d1, d2)], 1)])
    r.shuffle(tools)
    calls = [{"name": t1["name"], "arguments": a1}, {"name": t2["name"], "arguments": a2}]
    turns = [{"from": "human", "value": q}, {"from": "function_call", "value": json.dumps(calls, ensure_ascii=False)}]
    if not end_at_call:
        turns += [{"from": "observation", "value": json.dumps(o1, ensure_ascii=False)},
                  {"from": "observation", "value": json.dumps(o2, ensure_ascii=False)},
                  {"from": "gpt", "value": f"{s1} {s2}"}]
    return {"conversations": turns, "tools": json.dumps(tools, ensure_ascii=False)}


def chat_row(r, question, answer):
    tools = [d(r)[0] for d in r.sample(DOMAINS, r.randint(1, 2))]
    return {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
            "tools": json.dumps(tools, ensure_ascii=False)}


def make_train(seed: int = 0, n_single: int = 105, n_parallel: int = 12, n_chat: int = 30) -> list[dict]:
    r = random.Random(seed)
    rows = []
    for i in range(n_single):
        d = DOMAINS[i % len(DOMAINS)]
        rows.append(tool_row(r, d, [x for x in DOMAINS if x is not d], end_at_call=r.random() < 0.7))
    for _ in range(n_parallel):
        rows.append(parallel_row(r, end_at_call=r.random() < 0.7))
    replay = json.loads((ROOT / "src/tuneforge/data/builtin/general_replay_smollm2.json").read_text(encoding="utf-8"))
    for row in r.sample(replay, n_chat):
        rows.append(chat_row(r, row["instruction"], row["output"]))
    for q, a in SMALL_TALK:
        rows.append(chat_row(r, q, a))
    r.shuffle(rows)
    return rows


# ---- held out: other domains, other tool and parameter names --------------------------------------------------------
def heldout_tools():
    return {
        "flight": fn("get_flight_status", "Look up the live status of a flight", [
            ("flight_number", "string", "Flight number such as BA117")]),
        "stock": fn("get_stock_price", "Latest share price for a stock ticker", [
            ("ticker", "string", "Stock ticker symbol, e.g. AAPL")]),
        "currency": fn("convert_currency", "Convert an amount of money between currencies", [
            ("amount", "number", "Amount to convert"), ("from_currency", "string", "ISO code to convert from"),
            ("to_currency", "string", "ISO code to convert to")]),
        "translate": fn("translate_text", "Translate text into another language", [
            ("text", "string", "Text to translate"), ("target_language", "string", "Language to translate into")]),
        "recipe": fn("find_recipe", "Find a cooking recipe that uses an ingredient", [
            ("ingredient", "string", "Main ingredient")]),
        "alarm": fn("set_alarm", "Set an alarm clock", [("alarm_time", "string", "Time, HH:MM")]),
        "package": fn("track_package", "Track a parcel by its tracking code", [
            ("tracking_code", "string", "Parcel tracking code")]),
        "song": fn("play_song", "Play a song on the speaker", [("song_title", "string", "Title of the song")]),
        "table": fn("book_restaurant", "Reserve a table at a restaurant", [
            ("restaurant", "string", "Restaurant name"), ("guests", "integer", "Number of people")]),
        "lights": fn("toggle_lights", "Turn the lights of a room on or off", [
            ("room", "string", "Room name"), ("state", "string", "on or off")]),
        "population": fn("get_population", "Population of a country", [("country", "string", "Country name")]),
        "taxi": fn("order_taxi", "Order a taxi to an address", [("pickup_address", "string", "Pickup address")]),
    }


HELD_CALLS = [  # (tools offered, question, expected calls, lang)
    (["flight", "stock"], "What's the status of flight BA117?", [("flight", {"flight_number": "BA117"})], "en"),
    (["stock", "recipe"], "What is the stock price of NVDA?", [("stock", {"ticker": "NVDA"})], "en"),
    (["recipe", "song", "alarm"], "Find me a recipe with mushrooms.", [("recipe", {"ingredient": "mushrooms"})], "en"),
    (["alarm", "taxi"], "Set an alarm for 06:30.", [("alarm", {"alarm_time": "06:30"})], "en"),
    (["package", "flight"], "Where is my parcel? The tracking code is 1Z999AA1.",
     [("package", {"tracking_code": "1Z999AA1"})], "en"),
    (["song", "lights"], "Play the song Yellow Submarine.", [("song", {"song_title": "Yellow Submarine"})], "en"),
    (["population", "stock"], "What is the population of Kenya?", [("population", {"country": "Kenya"})], "en"),
    (["taxi", "alarm", "recipe"], "Order a taxi to 22 Baker Street.", [("taxi", {"pickup_address": "22 Baker Street"})],
     "en"),
    (["table", "song"], "Book a table at Luigi's for 4 people.", [("table", {"restaurant": "Luigi's", "guests": 4})],
     "en"),
    (["lights", "package"], "Turn the lights in the kitchen off.", [("lights", {"room": "kitchen", "state": "off"})],
     "en"),
    (["currency", "flight"], "Convert 50 USD to EUR.",
     [("currency", {"amount": 50, "from_currency": "USD", "to_currency": "EUR"})], "en"),
    (["translate", "recipe"], "Translate \"good morning\" into French.",
     [("translate", {"text": "good morning", "target_language": "French"})], "en"),
    (["flight", "taxi", "song"], "Is flight LH400 on time?", [("flight", {"flight_number": "LH400"})], "en"),
    (["stock", "population"], "How much is one share of TSLA right now?", [("stock", {"ticker": "TSLA"})], "en"),
    (["recipe", "stock"], "I have some chicken. Can you find a recipe for it?", [("recipe", {"ingredient": "chicken"})],
     "en"),
    (["song", "alarm", "package"], "Can you play Bohemian Rhapsody?", [("song", {"song_title": "Bohemian Rhapsody"})],
     "en"),
    (["package", "song"], "Track package JD0147.", [("package", {"tracking_code": "JD0147"})], "en"),
    (["population", "flight"], "How many people live in Brazil?", [("population", {"country": "Brazil"})], "en"),
    (["flight", "stock"], "What's the status of flight MU588? Also, what is the stock price of AMD?",
     [("flight", {"flight_number": "MU588"}), ("stock", {"ticker": "AMD"})], "en"),
    (["alarm", "song", "lights"], "Set an alarm for 07:45. Also, play the song Hey Jude.",
     [("alarm", {"alarm_time": "07:45"}), ("song", {"song_title": "Hey Jude"})], "en"),
    (["flight", "stock"], "查询航班 CA1234 的状态。", [("flight", {"flight_number": "CA1234"})], "zh"),
    (["stock", "recipe"], "帮我查一下 BABA 的股价。", [("stock", {"ticker": "BABA"})], "zh"),
    (["alarm", "song"], "帮我设一个 05:50 的闹钟。", [("alarm", {"alarm_time": "05:50"})], "zh"),
    (["song", "package"], "播放歌曲《月亮代表我的心》。", [("song", {"song_title": "月亮代表我的心"})], "zh"),
    (["package", "taxi"], "我的快递单号是 SF123456，帮我查一下到哪了。", [("package", {"tracking_code": "SF123456"})], "zh"),
    (["population", "alarm"], "日本有多少人口？", [("population", {"country": "日本"})], "zh"),
    (["recipe", "flight"], "找一个用豆腐做的菜谱。", [("recipe", {"ingredient": "豆腐"})], "zh"),
    (["taxi", "stock"], "帮我叫一辆出租车到人民广场。", [("taxi", {"pickup_address": "人民广场"})], "zh"),
]

CHAT_TOOLS = ["flight", "stock", "alarm", "package", "song", "taxi", "lights"]  # no geography tool for chit-chat
SMALL_TALK_HELD = ["Hello! How are you today?", "Thank you so much for your help!", "Tell me a fun fact about cats.",
                   "What is your favourite color?", "早上好！", "你能做什么？"]


def make_heldout(seed: int = 1) -> dict:
    r = random.Random(seed)
    tools = heldout_tools()
    calls = []
    for keys, q, expect, lang in HELD_CALLS:
        offered = [tools[k] for k in keys]
        r.shuffle(offered)
        calls.append({"question": q, "lang": lang, "tools": offered,
                      "expect": [{"name": tools[k]["name"], "arguments": a} for k, a in expect]})
    general = json.loads((ROOT / "tests/data/general_heldout.json").read_text(encoding="utf-8"))
    chat = []
    for q in [g["question"] for g in general[::2]] + SMALL_TALK_HELD:
        offered = [tools[k] for k in r.sample(CHAT_TOOLS, r.randint(1, 3))]
        chat.append({"question": q, "tools": offered})
    return {"calls": calls, "chat": chat}


def main() -> None:
    train = make_train()
    OUT_TRAIN.write_text(json.dumps(train, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    held = make_heldout()
    OUT_HELDOUT.write_text(json.dumps(held, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{OUT_TRAIN}: {len(train)} rows; {OUT_HELDOUT}: {len(held['calls'])} call and {len(held['chat'])} chat")


if __name__ == "__main__":
    main()

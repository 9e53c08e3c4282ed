#!/usr/bin/env python3
"""What a user does in Horizon, in headless Chromium (driven by tests/e2e_horizon.rs).

Steps, each ending with a screenshot NN-<step>.png in HZ_ARTIFACTS:
  login            log in as HZ_USER
  launch-dialog    Launch Instance: name, image HZ_IMAGE, flavor HZ_FLAVOR,
                   network HZ_NETWORK, HZ_USER_DATA as the Customization Script
  refused-launch   the same with HZ_BAD_USER_DATA (it fails while the rest runs)
  active           the instance Active in the table, with an address on HZ_NETWORK
  log-tab          its Log tab shows HZ_LOG_EXPECT
  snapshot         Create Snapshot from the row's action menu; the image Active
  from-snapshot    launch a second instance from that snapshot; Active
  refused          that instance in Error in the table; its Overview shows
                   the fault
  console          the Console tab: type `echo <token>`, read the answer on
                   the terminal's screen

The walk stops at the first step that fails: its screenshot is
NN-<step>-FAILED.png (and its page's HTML beside it). Whatever happens,
HZ_ARTIFACTS/result.json says what was done (ids and names the test checks with
Nova and Docker, what the pages showed) and which step failed. Exit status 0
when every step passed.

Environment: HZ_URL (Horizon, ending in /), HZ_USER, HZ_PASSWORD, HZ_ARTIFACTS,
HZ_CHROMIUM, HZ_CHROMEDRIVER, HZ_NAME (prefix of what it creates), HZ_IMAGE,
HZ_FLAVOR, HZ_NETWORK, HZ_USER_DATA, HZ_LOG_EXPECT, HZ_BAD_USER_DATA,
HZ_TIMEOUT (seconds for one wait, default 120). The password is never printed.
"""
import json
import os
import random
import re
import sys
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException,
                                        StaleElementReferenceException,
                                        TimeoutException,
                                        WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

E = os.environ
URL = E['HZ_URL'].rstrip('/') + '/'
ART = E['HZ_ARTIFACTS']
TIMEOUT = float(E.get('HZ_TIMEOUT', '120'))
NAME = E.get('HZ_NAME', 'nd-hz')

result = {'ok': False, 'steps': [], 'failed_step': None, 'screenshot': None,
          'error': None, 'servers': {}, 'snapshot': None}


def log(msg):
    print('[horizon_walk %6.1fs] %s' % (time.time() - T0, msg), file=sys.stderr, flush=True)


def browser():
    o = webdriver.ChromeOptions()
    # Debian's chromium and chromedriver, both given: Selenium Manager is never
    # asked to find or download anything
    o.binary_location = E.get('HZ_CHROMIUM', '/usr/lib/chromium/chromium')
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
              '--window-size=1400,1000', '--lang=en-US'):
        o.add_argument(a)
    # chromedriver's INFO log records every command with its arguments (the
    # password typed in too): warnings only
    svc = Service(executable_path=E.get('HZ_CHROMEDRIVER', '/usr/bin/chromedriver'),
                  service_args=['--log-level=WARNING'],
                  log_output=os.path.join(ART, 'chromedriver.log'))
    d = webdriver.Chrome(options=o, service=svc)
    d.set_page_load_timeout(TIMEOUT)
    return d


def wait(d, cond, what, timeout=None):
    """WebDriverWait that says what it waited for."""
    try:
        return WebDriverWait(d, timeout or TIMEOUT, poll_frequency=0.5,
                             ignored_exceptions=(NoSuchElementException,
                                                 StaleElementReferenceException)).until(cond)
    except TimeoutException:
        raise AssertionError('timed out after %ss waiting for %s' % (timeout or TIMEOUT, what))


def visible(d, by, sel, what=None, timeout=None):
    return wait(d, EC.visibility_of_element_located((by, sel)), what or sel, timeout)


def clickable(d, by, sel, what=None, timeout=None):
    return wait(d, EC.element_to_be_clickable((by, sel)), what or sel, timeout)


def click(d, el):
    """Click like a user, or by script when a fading backdrop is in the way."""
    d.execute_script('arguments[0].scrollIntoView({block: "center"});', el)
    try:
        el.click()
    except WebDriverException as e:
        if 'intercepted' not in str(e):
            raise
        d.execute_script('arguments[0].click();', el)


def click_at(d, by, sel, what=None, timeout=None):
    """Click the element at (by, sel) once it is clickable; found again when the
    page redraws it between the finding and the click (Horizon's tables
    refresh themselves), a few times at most."""
    for attempt in range(5):
        try:
            return click(d, clickable(d, by, sel, what, timeout))
        except StaleElementReferenceException:
            if attempt == 4:
                raise
            time.sleep(0.3)


def shown(d, xpath):
    """The displayed elements matching xpath."""
    return [e for e in d.find_elements(By.XPATH, xpath) if e.is_displayed()]


# ------------------------------------------------------------------ session
# Horizon's session lasts as long as the Keystone token it got at login: in
# the test lab (ND_TOKEN_EXPIRATION=240) only 240 s. A step that starts with less
# than FRESH seconds of it left logs in again first (see fresh()).
TOKEN_LIFE = float(E.get('HZ_TOKEN_LIFE', '3600'))
FRESH = 50
_logged_in = [0.0]


def fresh(d):
    """Log in again unless the session has FRESH seconds left."""
    if time.time() - _logged_in[0] > TOKEN_LIFE - FRESH:
        login(d)


def on_instances(d):
    return d.current_url.split('?')[0].rstrip('/').endswith('/project/instances')


def login(d, landing='project/instances/'):
    """A new session, landing on `landing` (the Overview, Horizon's default,
    is its slowest page)."""
    def login_form(d):
        # away from the old page first, or a late answer to one of its
        # requests sets the old session's cookie again
        d.get('about:blank')
        d.execute_cdp_cmd('Network.clearBrowserCookies', {})
        d.get(URL + 'auth/login/?next=/' + landing)
        return shown(d, '//input[@id="id_username"]')
    form = wait(d, login_form, 'the login form')[0]
    form.clear()
    form.send_keys(E['HZ_USER'])
    d.find_element(By.ID, 'id_password').send_keys(E['HZ_PASSWORD'])
    click(d, d.find_element(By.CSS_SELECTOR, 'button[type=submit]'))
    wait(d, lambda d: '/auth/login' not in d.current_url or shown(d, '//*[contains(@class,"alert-danger")]'),
         'the login to finish')
    if '/auth/login' in d.current_url:
        raise AssertionError('login refused: %s' % ' '.join(
            e.text for e in shown(d, '//*[contains(@class,"alert")]')))
    _logged_in[0] = time.time()


def get(d, path):
    d.get(URL + path.lstrip('/'))
    if '/auth/login' in d.current_url:
        login(d, path.lstrip('/'))


# --------------------------------------------------------- instances table
def row_of(d, name):
    rows = [r for r in d.find_elements(By.CSS_SELECTOR, 'table#instances tbody tr[data-object-id]')
            if r.get_attribute('data-display') == name]
    return rows[0] if rows else None


def cell(row, column):
    """The text of a column of a row of Horizon's instances table."""
    tds = row.find_elements(By.XPATH, './td')
    heads = row.find_elements(By.XPATH, 'ancestor::table[1]/thead/tr[last()]/th')
    names = [h.text.strip().lower() for h in heads]
    return tds[names.index(column.lower())].text.strip()


def wait_status(d, name, want, timeout=None):
    """Wait until the row of `name` in the instances table has status `want`.
    Horizon's table polls its rows in a transitional state by itself; the
    page is loaded again only when the row is not there (yet) or every 20 s.
    An Error where Active is wanted fails at once."""
    state = {'loaded': time.time() if on_instances(d) else 0, 'last': None}

    def check(d):
        if not on_instances(d) or time.time() - state['loaded'] > 20:
            get(d, 'project/instances/')
            state['loaded'] = time.time()
        r = row_of(d, name)
        if r is None:
            state['loaded'] = 0
            return False
        st = cell(r, 'status')
        state['last'] = st
        if st.lower() == want.lower() and 'loading' not in (r.get_attribute('class') or ''):
            return r
        if st.lower() == 'error' and want.lower() != 'error':
            raise AssertionError('%s went to Error' % name)
        return False
    try:
        wait(d, check, 'instance %s to be %s' % (name, want), timeout)
    except AssertionError as e:
        raise AssertionError('%s (last seen: %s)' % (e, state['last']))
    return row_of(d, name)


# ---------------------------------------------------------- launch dialog
def wizard_step(d, label):
    """Go to a step of the wizard by its name in the side navigation."""
    xp = ('//div[contains(@class,"wizard-nav")]//li[.//span[@ng-bind="::step.title" and '
          'normalize-space()="%s"]]' % label)
    click_at(d, By.XPATH, xp, 'the wizard step %s' % label)
    wait(d, lambda d: 'active' in d.find_element(By.XPATH, xp).get_attribute('class'),
         'the wizard step %s to be shown' % label)


def allocated(d, text):
    return shown(d, '//transfer-table//tr[td[normalize-space(string())="%s"]]'
                    '//button[contains(@class,"fa-arrow-down")]' % text)


def allocate(d, text, what):
    """In the step on screen, move the row showing `text` from Available to
    Allocated (its up-arrow button), unless it is there already."""
    if allocated(d, text):
        return
    xp = ('//transfer-table//tr[td[normalize-space(string())="%s"]]'
          '//button[contains(@class,"fa-arrow-up")]' % text)
    btn = wait(d, lambda d: (shown(d, xp) or [False])[0], '%s %s among the available ones' % (what, text))
    click(d, btn)
    wait(d, lambda d: allocated(d, text), '%s %s to be allocated' % (what, text))


def step_invalid(d, label):
    """Whether the wizard marks the step `label` as still to be filled in."""
    return shown(d, '//div[contains(@class,"wizard-nav")]//li[.//span[@ng-bind="::step.title" and '
                    'normalize-space()="%s"]]//span[contains(@class,"hz-icon-required")]' % label)


def open_launch_dialog(d):
    """Press Launch Instance until its dialog shows: the page reloads itself
    after a launch, and a dialog opened meanwhile goes with the old page."""
    for attempt in range(3):
        if attempt or not on_instances(d):
            get(d, 'project/instances/')
        click_at(d, By.ID, 'instances__action_launch-ng', 'the Launch Instance button')
        try:
            visible(d, By.CSS_SELECTOR, '.modal-dialog #name', 'the Launch Instance dialog', 30)
            return
        except AssertionError:
            if attempt == 2:
                raise
            log('no Launch Instance dialog after the click: loading the page again')


def launch(d, name, source_type=None, source=None, user_data=None, shot=None):
    """Fill in the Launch Instance dialog and press its Launch Instance button."""
    open_launch_dialog(d)
    field = d.find_element(By.CSS_SELECTOR, '.modal-dialog #name')
    field.clear()
    field.send_keys(name)

    def fill_source(again=False):
        wizard_step(d, 'Source')
        if source_type:
            sel = Select(visible(d, By.ID, 'boot-source-type', 'the boot source menu'))
            wait(d, lambda d: source_type in [o.text for o in sel.options],
                 'boot source %s to be offered' % source_type)
            if sel.first_selected_option.text != source_type:
                sel.select_by_visible_text(source_type)
        allocate(d, source or E.get('HZ_IMAGE', 'busybox'), 'image')

    def fill_flavor(again=False):
        wizard_step(d, 'Flavor')
        flavor = E.get('HZ_FLAVOR', 'm1.tiny')
        if again and allocated(d, flavor):
            # Horizon checks a flavor against the quotas when it is chosen; one
            # chosen before the quotas loaded stays marked invalid (nothing
            # checks it again): choose it once more, as a user would
            click(d, allocated(d, flavor)[0])
            wait(d, lambda d: not allocated(d, flavor), 'flavor %s to be released' % flavor)
        allocate(d, flavor, 'flavor')

    def fill_network(again=False):
        wizard_step(d, 'Networks')
        allocate(d, E.get('HZ_NETWORK', 'private'), 'network')

    steps = (('Source', fill_source), ('Flavor', fill_flavor), ('Networks', fill_network))
    for _, fill in steps:
        fill()
    if user_data is not None:
        wizard_step(d, 'Configuration')
        box = visible(d, By.ID, 'user-data', 'the Customization Script box')
        box.clear()
        box.send_keys(user_data)
        wait(d, lambda d: box.get_attribute('value').strip() == user_data.strip(),
             'the Customization Script to hold what was typed')

    def ready(d):
        # a step the wizard still marks as to be filled in (see fill_flavor)
        # is filled in again
        for label, fill in steps:
            if step_invalid(d, label):
                log('the wizard marks %s as still to be filled in' % label)
                fill(again=True)
        btn = d.find_element(By.CSS_SELECTOR, '.modal-dialog button.btn-primary.finish')
        return btn if btn.is_enabled() else False
    finish = wait(d, ready, 'the dialog\'s Launch Instance button to be enabled')
    if shot:
        shot()
    d.execute_script('window.__ndBeforeLaunch = true;')
    click(d, finish)
    wait(d, lambda d: not shown(d, '//div[contains(@class,"modal-dialog")]//input[@id="name"]'),
         'the Launch Instance dialog to close')
    # Horizon reloads the page after a launch: the next step waits for the new
    # page (a dialog opened on the old one goes with it)

    def reloaded(d):
        try:
            return (not d.execute_script('return window.__ndBeforeLaunch === true;')
                    and d.execute_script('return document.readyState;') == 'complete')
        except WebDriverException:
            return False
    try:
        WebDriverWait(d, 20, poll_frequency=0.2).until(reloaded)
    except TimeoutException:
        log('the page did not reload after the launch')


def server_id(d, name):
    r = row_of(d, name)
    if r is None:
        get(d, 'project/instances/')
        r = row_of(d, name)
    return r.get_attribute('data-object-id')


# ------------------------------------------------------------------ steps
def step_login(d):
    login(d)
    visible(d, By.XPATH, '//*[contains(@class,"navbar")]//*[normalize-space()="%s"]' % E['HZ_USER'],
            'the dashboard with the user\'s name after login')
    result['login_landing'] = d.current_url


def step_launch_dialog(d):
    fresh(d)
    name = NAME + '-first'
    launch(d, name, user_data=E['HZ_USER_DATA'], shot=lambda: snap(d, 'launch-dialog-filled'))
    result['servers']['first'] = {'name': name}


def step_active(d):
    fresh(d)
    name = result['servers']['first']['name']
    r = wait_status(d, name, 'Active')
    net = E.get('HZ_NETWORK', 'private')
    addrs = wait(d, lambda d: re.findall(r'\b\d+\.\d+\.\d+\.\d+\b', cell(row_of(d, name), 'ip address')),
                 'an IPv4 address in the row of %s' % name, 30)
    text = cell(r, 'ip address')
    result['servers']['first'].update(id=server_id(d, name), address=addrs[0], address_cell=text,
                                      status=cell(row_of(d, name), 'status'))
    assert net in text or addrs, 'no address on %s: %r' % (net, text)


def instance_page(d, key, tab=None):
    """The instance's detail page, loaded again if the browser did not stay on
    it (a navigation of the page before it, still under way, can take the
    browser back to the list)."""
    sid = result['servers'][key]['id']
    path = 'project/instances/%s/%s' % (sid, '?tab=instance_details__%s' % tab if tab else '')
    for attempt in range(3):
        get(d, path)
        try:
            wait(d, lambda d: sid in d.current_url and shown(d, '//ul[contains(@class,"nav-tabs")]'),
                 'the detail page of %s' % sid, 20)
            return sid
        except AssertionError:
            if attempt == 2:
                raise
            log('not on the detail page of %s (at %s): loading it again' % (sid, d.current_url))
    return sid


def step_log_tab(d):
    fresh(d)
    instance_page(d, 'first')
    click_at(d, By.XPATH, '//ul[contains(@class,"nav-tabs")]//a[normalize-space()="Log"]',
             'the Log tab')
    want = E['HZ_LOG_EXPECT']

    def logs(d):
        pre = shown(d, '//pre[contains(@class,"logs")]')
        if pre and want in pre[0].text:
            return pre[0].text
        # the log is loaded once; its own "Go" button loads it again
        for b in shown(d, '//form[contains(@class,"console_log")]//button | '
                          '//div[contains(@id,"instance_details__log")]//button[@type="submit"]'):
            try:
                b.click()
            except WebDriverException:
                pass
        return False
    text = wait(d, logs, 'the console log to show %r' % want, 60)
    result['servers']['first']['log'] = text[-2000:]


def step_snapshot(d):
    fresh(d)
    get(d, 'project/instances/')
    name = result['servers']['first']['name']
    sid = result['servers']['first']['id']
    snap_name = NAME + '-snap'
    row = wait(d, lambda d: row_of(d, name), 'the row of %s' % name)
    action = 'instances__row_%s__action_snapshot' % sid
    btn = d.find_elements(By.ID, action)
    if not btn or not btn[0].is_displayed():
        click(d, row.find_element(By.CSS_SELECTOR, '.dropdown-toggle'))
    click_at(d, By.ID, action, 'Create Snapshot in the row\'s action menu')
    field = visible(d, By.CSS_SELECTOR, '.modal-dialog #id_name', 'the Create Snapshot form')
    field.clear()
    field.send_keys(snap_name)
    snap(d, 'snapshot-form')
    click(d, d.find_element(By.CSS_SELECTOR, '.modal-dialog .modal-footer [type=submit]'))
    result['snapshot'] = {'name': snap_name}
    # Horizon goes to Images; the snapshot becomes Active there

    def active(d):
        if '/project/images' not in d.current_url or active.n:
            get(d, 'project/images/')
        active.n += 1
        rows = shown(d, '//tr[.//a[normalize-space()="%s"]]' % snap_name)
        if rows:
            active.last = rows[0].text
            if re.search(r'\bActive\b', rows[0].text):
                return rows[0]
        return False
    active.n, active.last = 0, None
    wait(d, active, 'snapshot %s to be Active in Images' % snap_name)
    result['snapshot']['row'] = active.last


def step_from_snapshot(d):
    fresh(d)
    name = NAME + '-second'
    launch(d, name, source_type='Instance Snapshot', source=result['snapshot']['name'],
           shot=lambda: snap(d, 'from-snapshot-dialog'))
    result['servers']['second'] = {'name': name}
    wait_status(d, name, 'Active')
    result['servers']['second'].update(id=server_id(d, name))


def step_refused_launch(d):
    fresh(d)
    name = NAME + '-refused'
    launch(d, name, user_data=E['HZ_BAD_USER_DATA'], shot=lambda: snap(d, 'refused-launch-filled'))
    result['servers']['refused'] = {'name': name}


def step_refused(d):
    fresh(d)
    name = result['servers']['refused']['name']
    wait_status(d, name, 'Error')
    result['servers']['refused'].update(id=server_id(d, name))
    instance_page(d, 'refused')
    head = visible(d, By.XPATH, '//h4[normalize-space()="Fault"]', 'the Fault section of the Overview')
    dl = head.find_element(By.XPATH, 'following-sibling::dl[1]')
    fault = {}
    for dt in dl.find_elements(By.TAG_NAME, 'dt'):
        fault[dt.text.strip()] = dt.find_element(By.XPATH, 'following-sibling::dd[1]').text.strip()
    d.execute_script('arguments[0].scrollIntoView({block: "center"});', head)
    result['servers']['refused']['fault_shown'] = fault


def step_console(d):
    fresh(d)
    instance_page(d, 'first')
    click_at(d, By.XPATH, '//ul[contains(@class,"nav-tabs")]//a[normalize-space()="Console"]',
             'the Console tab')
    frame = visible(d, By.CSS_SELECTOR, 'iframe#console_embed', 'the serial console frame', 60)
    d.switch_to.frame(frame)
    try:
        # Horizon's serial console: term.js in div.terminal, a websocket to
        # nova-serialproxy; its status line says when the socket is open
        visible(d, By.CSS_SELECTOR, '.terminal', 'the terminal', 60)
        wait(d, lambda d: 'Status: Open' in d.find_element(By.TAG_NAME, 'body').text,
             'the console\'s websocket to open (status line: %r)' % d.find_element(By.TAG_NAME, 'body').text[-80:],
             60)
        token = 'nd-%d' % random.randrange(10000, 99999)
        result['console'] = {'typed': 'echo ' + token}
        term = d.find_element(By.CSS_SELECTOR, '.terminal')
        click(d, term)
        ActionChains(d).send_keys('echo ' + token + Keys.ENTER).perform()

        def answer(d):
            rows = [r.text.replace('\xa0', ' ').rstrip()
                    for r in d.find_elements(By.CSS_SELECTOR, '.terminal > div')]
            # the command line holds "echo nd-…"; the answer is a line of its own
            if any(r.strip() == token for r in rows):
                return rows
            return False
        rows = wait(d, answer, 'the answer %s on the terminal' % token, 60)
        result['console']['screen'] = [r for r in rows if r.strip()][-10:]
    finally:
        snap(d, 'console-screen')
        d.switch_to.default_content()


# the refused instance is launched early: it goes to Error while the others run
STEPS = [('login', step_login), ('launch-dialog', step_launch_dialog),
         ('refused-launch', step_refused_launch), ('active', step_active),
         ('log-tab', step_log_tab), ('snapshot', step_snapshot), ('from-snapshot', step_from_snapshot),
         ('refused', step_refused), ('console', step_console)]

_shot = [0]


def snap(d, name, failed=False):
    """A screenshot NN-name.png (NN counting every shot of the walk)."""
    _shot[0] += 1
    path = os.path.join(ART, '%02d-%s%s.png' % (_shot[0], name, '-FAILED' if failed else ''))
    try:
        d.save_screenshot(path)
    except WebDriverException as e:
        log('no screenshot %s: %s' % (path, e))
        return None
    return path


def main():
    os.makedirs(ART, exist_ok=True)
    only = [s for s in E.get('HZ_STEPS', '').split(',') if s]
    d = browser()
    try:
        for name, fn in STEPS:
            if only and name not in only:
                continue
            t = time.time()
            log('step %s' % name)
            try:
                fn(d)
            except Exception as e:  # noqa: BLE001 - every failure is reported with its screenshot
                try:
                    d.switch_to.default_content()
                except WebDriverException:
                    pass
                path = snap(d, name, failed=True)
                if path:
                    try:
                        with open(path[:-4] + '.html', 'w') as f:
                            f.write(d.page_source)
                    except WebDriverException:
                        pass
                result.update(failed_step=name, screenshot=path,
                              error='%s: %s' % (type(e).__name__, str(e).strip().splitlines()[0]
                                                if str(e).strip() else ''),
                              url=d.current_url)
                result['steps'].append({'step': name, 'ok': False, 'seconds': round(time.time() - t, 1),
                                        'screenshot': path})
                log('step %s FAILED after %.1fs: %s (screenshot %s)' % (
                    name, time.time() - t, result['error'], path))
                traceback.print_exc(file=sys.stderr)
                return 1
            path = snap(d, name)
            result['steps'].append({'step': name, 'ok': True, 'seconds': round(time.time() - t, 1),
                                    'screenshot': path})
            log('step %s passed in %.1fs (screenshot %s)' % (name, time.time() - t, path))
        result['ok'] = True
        return 0
    finally:
        with open(os.path.join(ART, 'result.json'), 'w') as f:
            json.dump(result, f, indent=2)
        d.quit()


T0 = time.time()
if __name__ == '__main__':
    sys.exit(main())
